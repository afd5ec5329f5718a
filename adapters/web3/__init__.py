"""On-chain venues through web3: EVM JSON-RPC adapter, atomic multi-leg execution.

Modules: config (frozen venue config), constants (selectors, defaults), compile (solc-js build
with a source-hash cache), auth (keys from env or keystore, never shown), calldata
(deterministic ABI encoding), revert (revert data to typed errors), nonce, gas, client
(JSON-RPC transport and transaction lifecycle), execution (simulate-then-send atomic trades).
Solidity sources live in contracts/.
"""
