"""Venues behind one interface (`adapters.base.Venue`): simulated (`adapters.sim`), ccxt, web3."""
