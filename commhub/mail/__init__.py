"""Email: IMAP mailboxes archived into the contact history, and mail sent from commhub."""
