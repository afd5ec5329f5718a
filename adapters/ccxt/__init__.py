"""Centralized venues through ccxt (async), one client per venue, behind `basis_core.venue.Venue`.

config.py     CcxtVenueConfig: exchange, endpoints (base_url / sandbox), credentials source, limits
constants.py  the ONE error table (ccxt exception -> typed error -> failure mode), limits, statuses
auth.py       Credentials from environment variables or a 0600 secrets file; never shown
dispatch.py   Gate: asyncio face of the Cython router (priorities, throttle, sequence numbers)
parsing.py    ccxt structures -> basis_core.venue types, with MalformedResponse on bad answers
client.py     CcxtVenue: orders by our client ids, idempotent submit, cancel, queries, balances
perps.py      perpetuals: leverage, positions, wallet balances, marks and funding payments
streams.py    websocket books (gap -> fresh snapshot, silence -> stale) and the user-data stream
local.py      a scenario's ccxt venues on loopback exchange emulators, fed by the market generator
world.py      CcxtWorld: `basis run`'s live ccxt venues from [venues.NAME.ccxt], rules checked at start
emulate.py    one venue of a config served by a loopback emulator with its market (`basis emulator`)
"""

from .auth import Credentials
from .client import CcxtVenue
from .config import CcxtVenueConfig, CredentialsConfig

__all__ = ["CcxtVenue", "CcxtVenueConfig", "Credentials", "CredentialsConfig"]
