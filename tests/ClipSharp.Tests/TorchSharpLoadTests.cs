using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests;

/// <summary>The patched native library loads on this host and the core ops that CLIP needs run.</summary>
public class TorchSharpLoadTests
{
    [Fact]
    public void MatmulAttentionBackwardAndAdamWRun()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var w = nn.Parameter(randn(16, 16));
        var opt = optim.AdamW([w], lr: 0.01);
        var x = randn(2, 4, 8, 16);
        var y = nn.functional.scaled_dot_product_attention(x, x, x, is_casual: true);
        var p = matmul(y, w);
        var loss = (p * p).mean();
        var before = w.detach().clone();
        loss.backward();
        Assert.NotNull(w.grad);
        opt.step();
        Assert.True((w.detach() - before).abs().max().item<float>() > 0);
    }
}
