using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Modeling;

// Field names in this folder are snake_case on purpose: TorchSharp derives state_dict keys from them,
// and they must equal the reference keys (e.g. "attn.in_proj_weight").
#pragma warning disable IDE1006

/// <summary>QuickGELU, the activation of the OpenAI CLIP transformer MLPs: x · sigmoid(1.702 · x).</summary>
internal sealed class QuickGelu : nn.Module<Tensor, Tensor>
{
    /// <summary>The 1.702 of x · sigmoid(1.702 · x).</summary>
    public const float Coefficient = 1.702f;

    /// <summary>Creates the activation (no parameters).</summary>
    public QuickGelu() : base(nameof(QuickGelu)) { }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        // x·σ(kx) = silu(kx)/k: the fused silu backward needs three kernels instead of five (measured: 27 → 20 ms fp32,
        // 18 → 16 ms bf16 for a training batch's 18.6 M activations). Out of place on purpose: in bf16, libtorch's
        // in-place silu_ and mul_(scalar) round differently from the out-of-place kernels, and gradient checkpointing
        // needs the forward without autograd to equal the one with it.
        using var scaled = x.mul(TorchScalars.QuickGelu);
        using var act = F.silu(scaled);
        return act.mul(TorchScalars.InverseQuickGelu);
    }
}

/// <summary>
/// softmax(q·kᵀ/√d [+ causal mask]) · v over heads. Written as two batched matrix products around a float32
/// softmax rather than libtorch's fused scaled_dot_product_attention: for CLIP's short sequences (50 image tokens,
/// ≤ 77 text tokens) the fused CPU kernel is 1.3–3× slower than this (bf16 text, batch 64: 28 ms against 9 ms per
/// layer, see docs/benchmarks.md), and the float32 softmax is what autocast would do for bf16 inputs.
/// </summary>
internal static class Attention
{
    static readonly object Gate = new();
    static readonly Dictionary<long, Tensor> CausalMasks = [];

    /// <summary>q, k, v: [N, H, L, d] → [N, H, L, d] (dtype of v).</summary>
    public static Tensor Heads(Tensor q, Tensor k, Tensor v, bool causal)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        using var scope = NewDisposeScope();
        long l = q.shape[^2];
        using Scalar scale = (1.0 / Math.Sqrt(q.shape[^1])).ToScalar();
        var scores = q.matmul(k.transpose(-1, -2));                       // [N, H, L, L]
        scores = scores.dtype == ScalarType.Float32 ? scores.mul_(scale) : scores.to(ScalarType.Float32).mul_(scale);
        if (causal) scores = scores.add_(CausalMask(l), TorchScalars.One);
        var weights = scores.softmax(-1).to(v.dtype);
        return weights.matmul(v).MoveToOuterDisposeScope();
    }

    /// <summary>[L, L] float32: 0 on and below the diagonal, −∞ above (shared, never disposed).</summary>
    static Tensor CausalMask(long l)
    {
        lock (Gate)
        {
            if (!CausalMasks.TryGetValue(l, out var m))
            {
                using var _ = torch.no_grad();
                using var scope = NewDisposeScope();
                using Scalar negInf = float.NegativeInfinity.ToScalar();
                m = torch.full(l, l, negInf, ScalarType.Float32).triu(1).DetachFromDisposeScope();
                CausalMasks[l] = m;
            }
            return m;
        }
    }
}

/// <summary>
/// Multi-head self-attention with the packed q/k/v projection of torch.nn.MultiheadAttention
/// (<c>in_proj_weight</c> [3·width, width], <c>in_proj_bias</c>, <c>out_proj</c>). Works batch-first.
/// </summary>
internal sealed class SelfAttention : nn.Module<Tensor, Tensor>
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly long heads;
    private readonly bool causal;

    /// <summary>Creates the attention layer.</summary>
    /// <param name="width">Model width.</param>
    /// <param name="heads">Number of heads (width must divide evenly).</param>
    /// <param name="causal">Mask every position from attending to later ones (the text tower).</param>
    public SelfAttention(long width, long heads, bool causal) : base("attn")
    {
        this.heads = heads;
        this.causal = causal;
        in_proj_weight = nn.Parameter(torch.empty(3 * width, width));
        in_proj_bias = nn.Parameter(torch.zeros(3 * width));
        out_proj = nn.Linear(width, width);
        // torch.nn.MultiheadAttention's defaults: Xavier-uniform packed projection, zero biases.
        using (torch.no_grad())
        {
            nn.init.xavier_uniform_(in_proj_weight);
            out_proj.bias!.zero_();
        }
        RegisterComponents();
    }

    /// <summary>Packed q/k/v projection weight [3·width, width].</summary>
    public Parameter InProjWeight => in_proj_weight;

    /// <summary>Output projection.</summary>
    public Linear OutProj => out_proj;

    /// <summary>x: [N, L, D] → [N, L, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], l = x.shape[1], d = x.shape[2];
        var qkv = F.linear(x, in_proj_weight, in_proj_bias)
            .view(n, l, 3, heads, d / heads)
            .permute(2, 0, 3, 1, 4);            // [3, N, H, L, hd]
        var o = Attention.Heads(qkv[0], qkv[1], qkv[2], causal); // [N, H, L, hd]
        var merged = o.transpose(1, 2).reshape(n, l, d);
        return out_proj.forward(merged).MoveToOuterDisposeScope();
    }
}

/// <summary>The transformer MLP: c_fc (width → hidden, 4·width in the OpenAI models), the activation, c_proj.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear c_fc;
    private readonly Linear c_proj;
    private readonly MlpActivation activation;

    /// <summary>Creates the MLP with QuickGELU and a 4·width hidden layer (the OpenAI models).</summary>
    public Mlp(long width) : this(width, 4 * width, MlpActivation.QuickGelu) { }

    /// <summary>Creates the MLP with the given hidden width and activation.</summary>
    public Mlp(long width, long hiddenWidth, MlpActivation activation) : base("mlp")
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hiddenWidth);
        this.activation = activation;
        c_fc = nn.Linear(width, hiddenWidth);
        c_proj = nn.Linear(hiddenWidth, width);
        RegisterComponents();
    }

    /// <summary>First projection (width → hidden).</summary>
    public Linear CFc => c_fc;

    /// <summary>Second projection (hidden → width).</summary>
    public Linear CProj => c_proj;

    /// <summary>The activation between the projections.</summary>
    public MlpActivation Activation => activation;

    /// <summary>
    /// c_proj(act(c_fc(x))). For QuickGELU the activation's two constants move into the matrix products:
    /// h·σ(1.702h) = silu(1.702h)/1.702, and 1.702·(xWᵀ + b) and (1/1.702)·aWᵀ + b are addmm's alpha and beta, applied
    /// to the float32 accumulators before the result is stored. That drops two elementwise passes over the
    /// [tokens, hidden] activation in both directions of training (bf16 ViT-B/32 batch 32: 25.6 → 24.4 ms per MLP) and, in
    /// bf16, two roundings. Float32 results equal the three-step form to rounding (6.6e-7 on ViT-B/32 activations).
    /// Exact GELU is libtorch's erf-based kernel between two plain products.
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var flat = x.reshape(-1, x.shape[^1]);
        Tensor y;
        if (activation == MlpActivation.QuickGelu)
        {
            var h = torch.addmm(c_fc.bias!, flat, c_fc.weight!.t(), beta: QuickGelu.Coefficient, alpha: QuickGelu.Coefficient);
            var a = F.silu(h);
            y = torch.addmm(c_proj.bias!, a, c_proj.weight!.t(), beta: 1f, alpha: 1f / QuickGelu.Coefficient);
        }
        else
        {
            var h = torch.addmm(c_fc.bias!, flat, c_fc.weight!.t(), beta: 1f, alpha: 1f);
            var a = F.gelu(h);
            y = torch.addmm(c_proj.bias!, a, c_proj.weight!.t(), beta: 1f, alpha: 1f);
        }
        long[] shape = [.. x.shape[..^1], y.shape[^1]];
        return y.view(shape).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-LN residual block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>
internal sealed class ResidualAttentionBlock : nn.Module<Tensor, Tensor>
{
    private readonly SelfAttention attn;
    private readonly ClipLayerNorm ln_1;
    private readonly Mlp mlp;
    private readonly ClipLayerNorm ln_2;

    /// <summary>Creates one block (OpenAI MLP: QuickGELU, 4·width).</summary>
    public ResidualAttentionBlock(long width, long heads, bool causal) : this(width, heads, causal, 4 * width, MlpActivation.QuickGelu) { }

    /// <summary>Creates one block with the given MLP hidden width and activation.</summary>
    public ResidualAttentionBlock(long width, long heads, bool causal, long mlpWidth, MlpActivation activation) : base(nameof(ResidualAttentionBlock))
    {
        attn = new SelfAttention(width, heads, causal);
        ln_1 = new ClipLayerNorm(width);
        mlp = new Mlp(width, mlpWidth, activation);
        ln_2 = new ClipLayerNorm(width);
        RegisterComponents();
    }

    /// <summary>The attention layer.</summary>
    public SelfAttention Attention => attn;

    /// <summary>The MLP.</summary>
    public Mlp Mlp => mlp;

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x.add(attn.forward(ln_1.forward(x)), TorchScalars.One);
        return h.add(mlp.forward(ln_2.forward(h)), TorchScalars.One).MoveToOuterDisposeScope();
    }
}

/// <summary>A stack of residual attention blocks (<c>resblocks.N</c>).</summary>
public sealed class Transformer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResidualAttentionBlock> resblocks;

    /// <summary>Creates the stack (OpenAI MLPs: QuickGELU, 4·width).</summary>
    public Transformer(long width, long layers, long heads, bool causal) : this(width, layers, heads, causal, 4 * width, MlpActivation.QuickGelu) { }

    /// <summary>Creates the stack with the given MLP hidden width and activation.</summary>
    public Transformer(long width, long layers, long heads, bool causal, long mlpWidth, MlpActivation activation) : base("transformer")
    {
        Width = width;
        resblocks = new ModuleList<ResidualAttentionBlock>();
        for (int i = 0; i < layers; i++) resblocks.Add(new ResidualAttentionBlock(width, heads, causal, mlpWidth, activation));
        RegisterComponents();
    }

    /// <summary>Model width.</summary>
    public long Width { get; }

    /// <summary>The blocks, in order.</summary>
    internal IReadOnlyList<ResidualAttentionBlock> Blocks => resblocks.ToList();

    /// <summary>Number of blocks.</summary>
    public int Layers => resblocks.Count;

    /// <summary>Called with the output of each block (index, tensor); used to capture intermediates.</summary>
    public Action<int, Tensor>? BlockProbe { get; set; }

    /// <summary>
    /// Runs one block in place of <c>block.forward(x)</c> while autograd is recording (null: plain forward).
    /// Gradient checkpointing sets it to a function that keeps only the block's input and recomputes the block's
    /// activations in the backward pass.
    /// </summary>
    internal Func<ResidualAttentionBlock, Tensor, Tensor>? BlockRunner { get; set; }

    /// <summary>x: [N, L, D]. Each block runs in its own dispose scope, so only the current activations stay alive.</summary>
    public override Tensor forward(Tensor x)
    {
        var current = x;
        var runner = torch.is_grad_enabled() ? BlockRunner : null;
        for (int i = 0; i < resblocks.Count; i++)
        {
            Tensor next;
            using (var scope = NewDisposeScope())
            {
                next = (runner is null ? resblocks[i].forward(current) : runner(resblocks[i], current)).MoveToOuterDisposeScope();
            }
            if (!ReferenceEquals(current, x)) current.Dispose();
            current = next;
            BlockProbe?.Invoke(i, current);
        }
        return ReferenceEquals(current, x) ? x.alias() : current;
    }
}
