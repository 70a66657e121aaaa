using static TorchSharp.torch;

namespace ClipSharp.Tests;

/// <summary>Tensor comparisons with the error measures the issues specify.</summary>
public static class TensorAssert
{
    /// <summary>Relative error as max|actual − expected| / max|expected| (float64 arithmetic).</summary>
    public static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        Assert.Equal(expected.shape, actual.shape);
        var a = actual.to(ScalarType.Float64);
        var e = expected.to(ScalarType.Float64);
        double denom = e.abs().max().item<double>();
        double diff = (a - e).abs().max().item<double>();
        return denom == 0 ? diff : diff / denom;
    }

    /// <summary>max|actual − expected|.</summary>
    public static double MaxAbsError(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        Assert.Equal(expected.shape, actual.shape);
        return (actual.to(ScalarType.Float64) - expected.to(ScalarType.Float64)).abs().max().item<double>();
    }

    public static void Relative(Tensor actual, Tensor expected, double tolerance, string what)
    {
        double err = RelativeError(actual, expected);
        Assert.True(err <= tolerance, $"{what}: relative error {err:E3} exceeds {tolerance:E1}");
    }

    public static void Absolute(Tensor actual, Tensor expected, double tolerance, string what)
    {
        double err = MaxAbsError(actual, expected);
        Assert.True(err <= tolerance, $"{what}: max abs error {err:E3} exceeds {tolerance:E1}");
    }
}
