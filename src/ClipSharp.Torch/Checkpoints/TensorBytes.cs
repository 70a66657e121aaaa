using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

[assembly: InternalsVisibleTo("ClipSharp.Tests")]

namespace ClipSharp.Checkpoints;

/// <summary>Raw byte access to CPU tensors, shared by the checkpoint readers and writers.</summary>
internal static class TensorBytes
{
    /// <summary>Size in bytes of one element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new NotSupportedException($"tensor dtype {dtype} is not supported by ClipSharp checkpoints"),
    };

    /// <summary>Creates an uninitialised CPU tensor and fills it from <paramref name="fill"/>, which receives the
    /// tensor's whole storage as a writable span (no per-element work).</summary>
    public static Tensor Create(long[] shape, ScalarType dtype, SpanFiller fill)
    {
        var t = torch.empty(shape, dtype, device: CPU);
        try
        {
            fill(Span(t));
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>Receives a writable view of a new tensor's bytes.</summary>
    internal delegate void SpanFiller(Span<byte> destination);

    /// <summary>The bytes of a contiguous CPU tensor as a span over its storage.</summary>
    public static unsafe Span<byte> Span(Tensor t)
    {
        if (t.device_type != DeviceType.CPU || !t.is_contiguous())
            throw new ArgumentException("tensor must be a contiguous CPU tensor");
        long n = t.numel() * ElementSize(t.dtype);
        if (n == 0) return [];
        if (n > int.MaxValue) throw new NotSupportedException($"tensor of {n} bytes is larger than 2 GiB");
        return t.bytes;
    }
}
