"""On-chain venues through web3: EVM JSON-RPC adapter, atomic multi-leg execution.

Modules: config (frozen venue config), constants (selectors, refusal table, defaults), compile
(solc-js build with a source-hash cache), auth (keys from env or keystore, endpoint URLs; never
shown), calldata (deterministic ABI encoding), revert (revert data to typed errors), nonce, gas,
transport (JSON-RPC over a WebSocket), client (JSON-RPC and the transaction lifecycle),
execution (simulate-then-send atomic trades through the executor), arbitrage (DEX-DEX sizing
with the AMM kernel), venue (a pool behind the engine's Venue interface).
Solidity sources live in contracts/.
"""
