using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Modeling;

#pragma warning disable IDE1006 // snake_case fields are the state_dict keys

/// <summary>
/// LayerNorm (eps 1e-5) that always computes its statistics in float32, as the reference's LayerNorm subclass
/// does: a bfloat16 input is upcast, normalised with float32 weights, and cast back.
/// </summary>
public sealed class ClipLayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long[] shape;

    /// <summary>Creates the norm over the last dimension of size <paramref name="width"/> (weight 1, bias 0).</summary>
    public ClipLayerNorm(long width) : base("LayerNorm")
    {
        shape = [width];
        weight = nn.Parameter(ones(width));
        bias = nn.Parameter(zeros(width));
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        if (x.dtype == weight.dtype) return F.layer_norm(x, shape, weight, bias, 1e-5);
        using var scope = NewDisposeScope();
        var y = F.layer_norm(x.to(weight.dtype), shape, weight, bias, 1e-5).to(x.dtype);
        return y.MoveToOuterDisposeScope();
    }
}
