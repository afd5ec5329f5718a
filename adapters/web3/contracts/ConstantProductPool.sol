// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./IERC20.sol";

/// @title ConstantProductPool
/// @notice x*y=k pool over two tokens with the Uniswap-V2 fee math: 0.3% fee taken from the
///         input, amountOut = floor(in*997*rOut / (rIn*1000 + in*997)). Liquidity is added by
///         anyone (no LP shares: a venue for tests and simulations, not a product pool).
contract ConstantProductPool {
    address public immutable token0;
    address public immutable token1;
    uint256 public reserve0;
    uint256 public reserve1;

    error UnknownToken(address token);
    error InsufficientOutput(uint256 got, uint256 min);

    event Swap(address indexed sender, address indexed tokenIn, uint256 amountIn, uint256 amountOut, address to);
    event Sync(uint256 reserve0, uint256 reserve1);

    constructor(address token0_, address token1_) {
        require(token0_ != token1_ && token0_ != address(0) && token1_ != address(0), "Pool: bad tokens");
        token0 = token0_;
        token1 = token1_;
    }

    /// @notice The Uniswap-V2 quote: output for `amountIn` against reserves (rIn, rOut).
    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut) public pure returns (uint256) {
        require(amountIn > 0, "Pool: INSUFFICIENT_INPUT_AMOUNT");
        require(reserveIn > 0 && reserveOut > 0, "Pool: INSUFFICIENT_LIQUIDITY");
        uint256 amountInWithFee = amountIn * 997;
        return (amountInWithFee * reserveOut) / (reserveIn * 1000 + amountInWithFee);
    }

    /// @notice Output for selling `amountIn` of `tokenIn` at the current reserves.
    function quote(address tokenIn, uint256 amountIn) external view returns (uint256) {
        (uint256 rIn, uint256 rOut) = _reserves(tokenIn);
        return getAmountOut(amountIn, rIn, rOut);
    }

    /// @notice Add `amount0` of token0 and `amount1` of token1 (pulled with transferFrom).
    function addLiquidity(uint256 amount0, uint256 amount1) external {
        require(IERC20(token0).transferFrom(msg.sender, address(this), amount0), "Pool: transfer0");
        require(IERC20(token1).transferFrom(msg.sender, address(this), amount1), "Pool: transfer1");
        reserve0 += amount0;
        reserve1 += amount1;
        emit Sync(reserve0, reserve1);
    }

    /// @notice Sell `amountIn` of `tokenIn` (pulled from the caller) and send the output to `to`.
    ///         Reverts with InsufficientOutput unless the output is at least `minOut`.
    function swap(address tokenIn, uint256 amountIn, uint256 minOut, address to) external returns (uint256 amountOut) {
        (uint256 rIn, uint256 rOut) = _reserves(tokenIn);
        amountOut = getAmountOut(amountIn, rIn, rOut);
        if (amountOut < minOut) revert InsufficientOutput(amountOut, minOut);
        address tokenOut = tokenIn == token0 ? token1 : token0;
        require(IERC20(tokenIn).transferFrom(msg.sender, address(this), amountIn), "Pool: transfer in");
        require(IERC20(tokenOut).transfer(to, amountOut), "Pool: transfer out");
        if (tokenIn == token0) {
            reserve0 = rIn + amountIn;
            reserve1 = rOut - amountOut;
        } else {
            reserve1 = rIn + amountIn;
            reserve0 = rOut - amountOut;
        }
        emit Swap(msg.sender, tokenIn, amountIn, amountOut, to);
        emit Sync(reserve0, reserve1);
    }

    function _reserves(address tokenIn) private view returns (uint256 rIn, uint256 rOut) {
        if (tokenIn == token0) return (reserve0, reserve1);
        if (tokenIn == token1) return (reserve1, reserve0);
        revert UnknownToken(tokenIn);
    }
}
