using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Modeling;

/// <summary>
/// The image towers' 2-D convolutions as matrix products: im2col (<c>unfold</c>) followed by a GEMM (one batched product
/// when gradients are recorded, one per image otherwise), or a plain GEMM for 1×1 kernels.
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
        Tensor Columns(Tensor part) => k == 1 && padding == 0
            ? (stride == 1 ? part : part[.., .., TensorIndex.Slice(0, null, stride), TensorIndex.Slice(0, null, stride)]).reshape(part.shape[0], c, ho * wo)
            : F.unfold(part, (k, k), padding: (padding, padding), stride: (stride, stride));
        Tensor y;
        if (is_grad_enabled() && (x.requires_grad || weight.requires_grad || bias is { requires_grad: true }))
        {
            // Training: one batched product, so autograd keeps one node per convolution.
            y = matrix.matmul(Columns(x)).view(n, o, ho, wo);
            if (bias is not null) y = y.add_(bias.view(1, o, 1, 1), TorchScalars.One);
        }
        else
        {
            // Inference: image by image, each product written into its slice of the output, which starts as the bias;
            // one image's columns stay small enough to be reused from cache.
            y = bias is null ? zeros(n, o, ho * wo, dtype: x.dtype) : bias.view(1, o, 1).expand(n, o, ho * wo).contiguous();
            for (long i = 0; i < n; i++)
            {
                using var image = NewDisposeScope();
                y[i].addmm_(matrix, Columns(x.narrow(0, i, 1)).squeeze(0), beta: 1, alpha: 1);
            }
            y = y.view(n, o, ho, wo);
        }
        return y.MoveToOuterDisposeScope();
    }
}
