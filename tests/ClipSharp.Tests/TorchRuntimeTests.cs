using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests;

/// <summary>
/// <see cref="TorchRuntime"/> has to run before libtorch's first matrix multiplication; tests that use TorchSharp
/// directly may run before any ClipSharp type is touched, so the test assembly initialises it first too.
/// </summary>
internal static class TestAssemblyInitializer
{
#pragma warning disable CA2255 // Test assembly: runs the same process-wide set-up an application gets from ClipSharp.
    [ModuleInitializer]
    internal static void Initialize() => TorchRuntime.EnsureInitialized();
#pragma warning restore CA2255
}

public class TorchRuntimeTests
{
    [Fact]
    public void MklDispatchesOnCpuFeaturesOnLinuxX64()
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64)
            return;
        Assert.Null(Environment.GetEnvironmentVariable(TorchRuntime.KeepVendorCheckVariable));
        Assert.StartsWith("MKL dispatches on CPU features", TorchRuntime.MklDispatch);
    }

    /// <summary>The kernels MKL picks after the vendor check is lifted compute the same products: float32 GEMMs of the
    /// shapes CLIP uses agree with a float64 reference to float32 accumulation error.</summary>
    [Theory]
    [InlineData(1, 768, 2304)]
    [InlineData(50, 768, 3072)]
    [InlineData(77, 3072, 768)]
    [InlineData(333, 517, 129)]
    public void Float32MatmulMatchesFloat64Reference(int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        using var g = new Generator((ulong)(42 + m));
        var a = randn([m, k], generator: g);
        var b = randn([k, n], generator: g);
        var c32 = a.matmul(b).to(ScalarType.Float64);
        var c64 = a.to(ScalarType.Float64).matmul(b.to(ScalarType.Float64));
        // Each entry is a sum of k products of unit normals, |c| ~ sqrt(k); float32 accumulation error ~ 1e-7·k.
        double err = (c32 - c64).abs().max().item<double>();
        Assert.True(err < 1e-6 * k, $"max |float32 − float64| = {err:E2} for {m}×{k}×{n}");
    }
}
