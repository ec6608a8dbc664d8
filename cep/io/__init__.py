"""Sources, sinks and codecs: bytes in, records out."""
