"""Roles over a real broker: the driver that runs a role on an MQTT link, and a Cristian
client on a link of its own."""
