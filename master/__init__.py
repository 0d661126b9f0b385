"""The Berkeley master: polls the nodes, averages, and sends each its correction."""
