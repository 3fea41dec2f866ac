package lua

import (
	"math"
	"math/bits"

	glua "github.com/yuin/gopher-lua"
)

// LuaJIT's bit module: operands are normalised to signed 32-bit integers
// (rounded, modulo 2^32) and results are signed, so bit.tobit(0xffffffff)
// is -1 as in LuaJIT.
var bitFuncs = map[string]glua.LGFunction{
	"tobit":   func(L *glua.LState) int { return pushBit(L, checkBit(L, 1)) },
	"bnot":    func(L *glua.LState) int { return pushBit(L, ^checkBit(L, 1)) },
	"band":    bitFold(func(a, b int32) int32 { return a & b }),
	"bor":     bitFold(func(a, b int32) int32 { return a | b }),
	"bxor":    bitFold(func(a, b int32) int32 { return a ^ b }),
	"lshift":  bitShift(func(x uint32, n uint) uint32 { return x << n }),
	"rshift":  bitShift(func(x uint32, n uint) uint32 { return x >> n }),
	"arshift": bitShift(func(x uint32, n uint) uint32 { return uint32(int32(x) >> n) }),
	"rol":     bitShift(func(x uint32, n uint) uint32 { return bits.RotateLeft32(x, int(n)) }),
	"ror":     bitShift(func(x uint32, n uint) uint32 { return bits.RotateLeft32(x, -int(n)) }),
	"bswap":   func(L *glua.LState) int { return pushBit(L, int32(bits.ReverseBytes32(uint32(checkBit(L, 1))))) },
	"tohex":   bitToHex,
}

// tobit mirrors LuaJIT's lj_num2bit: round half to even, keep the low 32
// bits. NaN and infinities have no low bits; LuaJIT yields 0 for them on
// x64 as well.
func tobit(x float64) int32 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return int32(uint32(int64(math.Mod(math.RoundToEven(x), 1<<32))))
}

func checkBit(L *glua.LState, n int) int32 { return tobit(float64(L.CheckNumber(n))) }

func pushBit(L *glua.LState, v int32) int {
	L.Push(glua.LNumber(v))
	return 1
}

func bitFold(op func(a, b int32) int32) glua.LGFunction {
	return func(L *glua.LState) int {
		acc := checkBit(L, 1)
		for i := 2; i <= L.GetTop(); i++ {
			acc = op(acc, checkBit(L, i))
		}
		return pushBit(L, acc)
	}
}

func bitShift(op func(x uint32, n uint) uint32) glua.LGFunction {
	return func(L *glua.LState) int {
		x := uint32(checkBit(L, 1))
		n := uint(checkBit(L, 2)) & 31
		return pushBit(L, int32(op(x, n)))
	}
}

// bitToHex: n digits (default 8, at most 8), uppercase when n < 0.
func bitToHex(L *glua.LState) int {
	x := uint32(checkBit(L, 1))
	n := int32(8)
	if L.GetTop() >= 2 && L.Get(2) != glua.LNil {
		n = checkBit(L, 2)
	}
	digits := "0123456789abcdef"
	if n < 0 {
		n = -n
		digits = "0123456789ABCDEF"
	}
	if n > 8 || n < 0 { // n < 0: -(-2^31) overflowed
		n = 8
	}
	buf := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		buf[i] = digits[x&15]
		x >>= 4
	}
	L.Push(glua.LString(buf))
	return 1
}
