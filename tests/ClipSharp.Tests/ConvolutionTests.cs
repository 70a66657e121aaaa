using TorchSharp;
using ClipSharp.Modeling;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Tests;

/// <summary>
/// The convolutions the image towers run agree with a float64 reference: <see cref="Convolution"/> (every ResNet
/// convolution) forward and both gradients in float32, forward in bfloat16, and libtorch's own conv2d for the ViT
/// patch embedding, the one convolution that still goes through it. The 3×3 shapes are ones libtorch's oneDNN got
/// wrong on the project's AVX-512 AMD CPU (see <see cref="Convolution"/>): with <c>F.conv2d</c> in place of
/// <c>Convolution.Conv2d</c> several float32 cases (forward or input gradient, some NaN) and most bfloat16 ones fail there, differently from run to run.
/// </summary>
public class ConvolutionTests
{
    public static TheoryData<int, int, int, int, int, int> Shapes => new()
    {
        // kernel, stride, padding, in, out, side
        { 3, 1, 1, 4, 4, 17 },
        { 3, 1, 1, 8, 8, 14 },
        { 3, 1, 1, 16, 4, 15 },
        { 3, 1, 1, 20, 8, 16 },
        { 3, 1, 1, 24, 4, 19 },
        { 3, 2, 1, 3, 32, 21 },
        { 1, 1, 0, 40, 20, 12 },
        { 1, 2, 0, 12, 24, 11 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Float32ConvolutionMatchesFloat64Reference(int kernel, int stride, int padding, int cin, int cout, int side)
    {
        using var scope = NewDisposeScope();
        var (x, w, b) = Inputs(kernel, cin, cout, side);
        using var seven = new Generator(7);
        var gy = randn([4, cout, (side + 2 * padding - kernel) / stride + 1, (side + 2 * padding - kernel) / stride + 1],
            generator: seven);

        (Tensor y, Tensor dw, Tensor dx, Tensor db) Run(ScalarType type)
        {
            var xx = x.to(type).requires_grad_(true);
            var ww = w.to(type).requires_grad_(true);
            var bb = b.to(type).requires_grad_(true);
            var y = Convolution.Conv2d(xx, ww, bb, stride, padding);
            y.backward([gy.to(type)]);
            return (y.detach().to(ScalarType.Float64), ww.grad!.to(ScalarType.Float64), xx.grad!.to(ScalarType.Float64), bb.grad!.to(ScalarType.Float64));
        }

        var exact = Run(ScalarType.Float64);
        var single = Run(ScalarType.Float32);
        // The float64 run is also checked against libtorch's float64 conv2d, which does not go through oneDNN.
        var reference = F.conv2d(x.to(ScalarType.Float64), w.to(ScalarType.Float64), b.to(ScalarType.Float64), [stride, stride], [padding, padding]);
        Assert.True(Rel(exact.y, reference) < 1e-12, $"float64 im2col convolution differs from conv2d by {Rel(exact.y, reference):E1}");
        // Relative to the largest value: float32 accumulation over cin·k² terms stays far below 1e-5.
        double ry = Rel(single.y, exact.y), rw = Rel(single.dw, exact.dw), rx = Rel(single.dx, exact.dx), rb = Rel(single.db, exact.db);
        Assert.True(ry < 1e-5 && rw < 1e-5 && rx < 1e-5 && rb < 1e-5,
            $"k{kernel}/s{stride} {cin}→{cout} at {side}px: forward {ry:E1}, weight grad {rw:E1}, input grad {rx:E1}, bias grad {rb:E1}");
        // Without gradients the product is done image by image: the same values.
        using (no_grad())
        {
            double ri = Rel(Convolution.Conv2d(x, w, b, stride, padding).to(ScalarType.Float64), exact.y);
            Assert.True(ri < 1e-5, $"k{kernel}/s{stride} {cin}→{cout} at {side}px: inference forward {ri:E1}");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void BFloat16ConvolutionMatchesFloat64OfTheSameInputs(int kernel, int stride, int padding, int cin, int cout, int side)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var (x, w, b) = Inputs(kernel, cin, cout, side);
        var xb = x.to(ScalarType.BFloat16);
        var wb = w.to(ScalarType.BFloat16);
        var bb = b.to(ScalarType.BFloat16);
        var exact = F.conv2d(xb.to(ScalarType.Float64), wb.to(ScalarType.Float64), bb.to(ScalarType.Float64), [stride, stride], [padding, padding]);
        var half = Convolution.Conv2d(xb, wb, bb, stride, padding).to(ScalarType.Float64);
        // bfloat16 keeps 8 significant bits: rounding the result costs 2^-9 relative, the rest is accumulation.
        Assert.True(Rel(half, exact) < 1e-2, $"k{kernel}/s{stride} {cin}→{cout}: bfloat16 off by {Rel(half, exact):E1}");
    }

    [Theory]
    [InlineData(32, 768, 224)]
    [InlineData(16, 768, 224)]
    [InlineData(14, 1024, 224)]
    [InlineData(32, 64, 70)]
    public void PatchEmbeddingConvolutionMatchesFloat64Reference(int patch, int width, int side)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var g = new Generator((ulong)(patch * width));
        var x = randn([2, 3, side, side], generator: g);
        using var scale = 0.05.ToScalar();
        var w = randn([width, 3, patch, patch], generator: g).mul(scale);
        var exact = F.conv2d(x.to(ScalarType.Float64), w.to(ScalarType.Float64), null, [patch, patch]);
        var single = F.conv2d(x, w, null, [patch, patch]).to(ScalarType.Float64);
        Assert.True(Rel(single, exact) < 1e-5, $"patch {patch}, width {width}: float32 conv2d off by {Rel(single, exact):E1}");
    }

    private static (Tensor x, Tensor w, Tensor b) Inputs(int kernel, int cin, int cout, int side)
    {
        using var g = new Generator((ulong)(1000 * cin + 10 * cout + kernel));
        using var tenth = 0.1.ToScalar();
        return (randn([4, cin, side, side], generator: g), randn([cout, cin, kernel, kernel], generator: g).mul(tenth), randn([cout], generator: g));
    }

    private static double Rel(Tensor a, Tensor e) => ((a - e).abs().max() / e.abs().max()).item<double>();
}
