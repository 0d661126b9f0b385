"""Nodes: participants whose clocks are disciplined by a master."""
