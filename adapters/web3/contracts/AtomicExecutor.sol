// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./IERC20.sol";

interface IPool {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function swap(address tokenIn, uint256 amountIn, uint256 minOut, address to) external returns (uint256);
}

/// @title AtomicExecutor
/// @notice Runs a multi-leg path (e.g. buy on pool A, sell on pool B) in one transaction out of
///         its own inventory. Each leg sells the whole output of the previous leg. The call
///         reverts, leaving every balance unchanged, unless each leg's output is at least its
///         minimum, the path ends in the token it started with, the final amount is at least
///         amountIn + minProfit, and block.timestamp <= deadline. Only the owner may call it.
contract AtomicExecutor {
    struct Leg {
        address pool;
        address tokenIn;
        uint256 minOut;
    }

    address public immutable owner;

    error NotOwner();
    error Expired(uint256 deadline, uint256 timestamp);
    error LegBelowMin(uint256 leg, uint256 got, uint256 min);
    error ProfitBelowMin(uint256 amountIn, uint256 amountOut, uint256 minProfit);
    error BrokenPath(uint256 leg);

    event Executed(bytes32 indexed tag, address indexed token, uint256 amountIn, uint256 amountOut, uint256 profit);

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @notice Execute `legs` starting with `amountIn` of legs[0].tokenIn. `tag` is an opaque
    ///         opportunity id echoed in the Executed event. Returns the final amount.
    function execute(Leg[] calldata legs, uint256 amountIn, uint256 minProfit, uint256 deadline, bytes32 tag)
        external
        onlyOwner
        returns (uint256 amountOut)
    {
        if (block.timestamp > deadline) revert Expired(deadline, block.timestamp);
        require(legs.length >= 2 && legs.length <= 4, "Executor: path must have 2..4 legs");
        address start = legs[0].tokenIn;
        uint256 before = IERC20(start).balanceOf(address(this));
        address token = start;
        amountOut = amountIn;
        for (uint256 i = 0; i < legs.length; i++) {
            Leg calldata leg = legs[i];
            if (leg.tokenIn != token) revert BrokenPath(i);
            IPool pool = IPool(leg.pool);
            address t0 = pool.token0();
            address tokenOut = token == t0 ? pool.token1() : t0;
            if (tokenOut == token || (token != t0 && token != pool.token1())) revert BrokenPath(i);
            IERC20(token).approve(leg.pool, amountOut);
            uint256 got = pool.swap(token, amountOut, 0, address(this));
            if (got < leg.minOut) revert LegBelowMin(i, got, leg.minOut);
            amountOut = got;
            token = tokenOut;
        }
        if (token != start) revert BrokenPath(legs.length);
        if (amountOut < amountIn + minProfit) revert ProfitBelowMin(amountIn, amountOut, minProfit);
        uint256 afterBal = IERC20(start).balanceOf(address(this));
        if (afterBal < before + minProfit) revert ProfitBelowMin(amountIn, amountOut, minProfit);
        emit Executed(tag, start, amountIn, amountOut, amountOut - amountIn);
    }

    /// @notice Send `amount` of `token` held by the executor to `to`.
    function withdraw(address token, uint256 amount, address to) external onlyOwner {
        require(IERC20(token).transfer(to, amount), "Executor: withdraw failed");
    }
}
