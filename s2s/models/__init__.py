"""Models. Importing this package registers every encoder, decoder and attention type."""

from s2s.models import attention, decoders, encoders  # noqa: F401  (registration)
