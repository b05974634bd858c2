"""wildvalues: observe which values an AI assistant expresses in real conversations, at scale."""

__version__ = "0.1.0"
