"""Telephony: phone-system call events in, call state and screen-pops out."""
