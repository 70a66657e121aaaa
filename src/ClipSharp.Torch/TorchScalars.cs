using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp;

/// <summary>
/// Scalars that stay reachable for the life of the process.
/// TorchSharp 0.107 turns numbers into native <see cref="Scalar"/> objects implicitly (<c>a + b</c> passes alpha = 1,
/// <c>x * 1.702</c> passes 1.702) and does not keep that object alive across the native call, so a garbage collection
/// at the wrong moment lets the finalizer free the scalar while libtorch reads it ("Expected false to be true" from
/// c10::Scalar::toFloat, or worse). It is rare per call but certain over a long training run. Hot paths therefore
/// pass scalars that are rooted here, or held in a local that is disposed after its last use.
/// </summary>
internal static class TorchScalars
{
    /// <summary>1, the alpha of a plain tensor addition.</summary>
    public static readonly Scalar One = 1.0.ToScalar();

    /// <summary>2.</summary>
    public static readonly Scalar Two = 2.0.ToScalar();

    /// <summary>−1.</summary>
    public static readonly Scalar MinusOne = (-1.0).ToScalar();

    /// <summary>QuickGELU's 1.702.</summary>
    public static readonly Scalar QuickGelu = 1.702.ToScalar();

    /// <summary>1 / 1.702, QuickGELU written as silu(1.702·x) / 1.702.</summary>
    public static readonly Scalar InverseQuickGelu = (1.0 / 1.702).ToScalar();

    /// <summary>Integer 0 (keeps integer results integer, e.g. the start of <see cref="Arange"/>).</summary>
    public static readonly Scalar IntZero = 0.ToScalar();

    /// <summary>Integer 1 (step of <see cref="Arange"/>, increment of an int64 counter).</summary>
    public static readonly Scalar IntOne = 1.ToScalar();

    /// <summary>
    /// int64 [0, 1, …, <paramref name="end"/> − 1], the same tensor as <c>torch.arange(end)</c>, which would pass three
    /// implicit scalars (end, and start and step inside TorchSharp).
    /// </summary>
    public static Tensor Arange(long end, Device? device = null)
    {
        using Scalar stop = end.ToScalar();
        return torch.arange(IntZero, stop, IntOne, device: device);
    }
}
