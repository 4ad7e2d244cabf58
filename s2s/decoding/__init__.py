"""Search over the decoding contract: greedy, beam, and the pieces they share."""
