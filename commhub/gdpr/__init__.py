"""Data protection: export (GDPR Art. 15/20), erasure (Art. 17) and retention."""
