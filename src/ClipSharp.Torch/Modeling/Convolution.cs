using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Modeling;

/// <summary>
/// The image towers' 2-D convolutions as matrix products: im2col (<c>unfold</c>) followed by one GEMM per chunk of
/// the batch, or a plain GEMM for 1×1 kernels.
/// </summary>
/// <remarks>
/// Written out rather than calling <c>conv2d</c> because libtorch 2.10's convolutions go through its bundled oneDNN
/// 3.7.1, which returns wrong values on this project's AVX-512 AMD EPYC: float32 3×3 convolutions off by 10–30 % in
/// the forward pass for some channel counts (20 or 24 inputs), wrong input gradients for most 3×3 shapes, NaN in
/// places, and bfloat16 3×3 convolutions wrong for 20 of 24 channel pairs tried. Switching oneDNN off globally makes
/// convolutions right but sends every bfloat16 matrix product to a scalar fallback (4,000× slower), so oneDNN stays
/// on for matrix products, which are exact here (float32 through MKL, bfloat16 through oneDNN's matmul), and the
/// convolution is reduced to those. <c>ConvolutionTests</c> holds the evidence and fails if either goes wrong.
/// The arithmetic is the convolution's own: the same products summed in a GEMM instead of a convolution kernel.
/// </remarks>
internal static class Convolution
{
    /// <summary>Upper bound on one im2col buffer when no gradient is recorded; larger batches are done in chunks.</summary>
    private const long ChunkBytes = 64L << 20;

    /// <summary>
    /// <c>conv2d(x, weight, bias, stride, padding)</c> for a square kernel, no dilation, one group: x [N, C, H, W],
    /// weight [O, C, k, k], bias [O] or null.
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, long stride, long padding)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        long o = weight.shape[0], k = weight.shape[2];
        if (weight.shape[1] != c || weight.shape[3] != k)
            throw new ArgumentException($"convolution weight {string.Join('×', weight.shape)} does not fit input {string.Join('×', x.shape)}");
        long ho = (h + 2 * padding - k) / stride + 1, wo = (w + 2 * padding - k) / stride + 1;
        var matrix = weight.reshape(o, c * k * k);
        Tensor y;
        if (k == 1 && padding == 0)
        {
            var input = stride == 1 ? x : x[.., .., TensorIndex.Slice(0, null, stride), TensorIndex.Slice(0, null, stride)];
            y = matrix.matmul(input.reshape(n, c, ho * wo));
        }
        else
        {
            long perImage = c * k * k * ho * wo * x.ElementSize;
            long chunk = is_grad_enabled() ? n : Math.Max(1, ChunkBytes / Math.Max(1, perImage));
            y = chunk >= n
                ? matrix.matmul(F.unfold(x, (k, k), padding: (padding, padding), stride: (stride, stride)))
                : cat(x.split(chunk).Select(part => matrix.matmul(F.unfold(part, (k, k), padding: (padding, padding), stride: (stride, stride)))).ToArray());
        }
        y = y.view(n, o, ho, wo);
        if (bias is not null) y = y.add_(bias.view(1, o, 1, 1), TorchScalars.One);
        return y.MoveToOuterDisposeScope();
    }
}
