"""Phone-system adapters, one package per vendor.

Each adapter turns its vendor's webhook requests into commhub's own call events
(`commhub.telephony.contract`), verifies them and builds the reply the vendor expects. The core
never imports an adapter: it finds them through the `commhub.adapters` entry points in
pyproject.toml.
"""
