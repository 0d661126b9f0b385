"""The MQTT edge: the only package that imports paho.

- `url`: broker URLs, and where a password comes from;
- `link`: one MQTT connection, with kernel receive timestamps and one-step send times;
- `packets`: a quick path through paho's MQTT 5 property codec and publish decoding.
"""
