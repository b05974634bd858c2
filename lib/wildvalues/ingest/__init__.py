"""From raw records to conversations: input layouts, PII redaction, who counts as one person."""
