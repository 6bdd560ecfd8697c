"""commhub: phone systems and mailboxes joined to customer files."""

__version__ = "0.1.0"
