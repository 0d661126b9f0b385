"""clocksync: clock synchronization for device fleets that share an MQTT broker.

`SiteClock` (clocksync.embed) runs a participant inside an application and reads its
clock: the site's time.
"""

__version__ = "0.1.0"

from clocksync.embed import SiteClock

__all__ = ["SiteClock", "__version__"]
