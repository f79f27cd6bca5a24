"""Telephony service for a telesales floor."""
