"""Rhizome's domain: pilots, experiments, statistics, decisions and the SQL store.

Imports nothing else of ours.
"""
