"""On-chain venues through web3: EVM JSON-RPC adapter, atomic multi-leg execution.

config.py     frozen venue config; the run config's [venues.NAME.web3] table
constants.py  selectors, refusal table, defaults
compile.py    solc-js build of contracts/ (the Solidity sources) with a source-hash cache
auth.py       keys from env or keystore, endpoint URLs; never shown
calldata.py   deterministic ABI encoding
revert.py     revert data to typed errors
nonce.py      nonce allocation: no gaps, no reuse
gas.py        EIP-1559 fees under hard caps
transport.py  JSON-RPC over a WebSocket
client.py     JSON-RPC and the transaction lifecycle
bundle.py     a bundle relay: eth_callBundle to simulate, eth_sendBundle for the next blocks
execution.py  simulate-then-send atomic trades through the executor
arbitrage.py  DEX-DEX sizing with the AMM kernel
streams.py    new heads and the pools' Sync logs: eth_subscribe, or polled
books.py      the pools' live reserves and books, stale on a silent node
venue.py      a pool behind the engine's Venue interface
world.py      pools on an EVM node beside the simulated venues (mixed CEX-DEX runs)
devchain.py   a local chain (anvil) with a config's tokens, pools and executor deployed
"""
