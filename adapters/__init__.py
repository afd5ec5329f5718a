"""Venues behind one interface (`basis_core.venue.Venue`): simulated (`adapters.sim`), ccxt, web3."""
