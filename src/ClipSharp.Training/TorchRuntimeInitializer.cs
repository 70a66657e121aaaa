using System.Runtime.CompilerServices;

namespace ClipSharp.Training;

/// <summary>
/// This assembly calls TorchSharp directly, possibly before any ClipSharp.Torch type is touched; it runs the same
/// process-wide set-up (<see cref="TorchRuntime"/>) when it loads, so libtorch's first matrix product sees it.
/// </summary>
internal static class TorchRuntimeInitializer
{
#pragma warning disable CA2255 // A library module initializer is deliberate: MKL reads the flag once, at its first call.
    [ModuleInitializer]
    internal static void OnAssemblyLoad() => TorchRuntime.OnAssemblyLoad();
#pragma warning restore CA2255
}
