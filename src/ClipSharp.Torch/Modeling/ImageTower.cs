using static TorchSharp.torch;

namespace ClipSharp.Modeling;

/// <summary>Common shape of the two image towers: pixels [N, 3, R, R] → image features [N, embed_dim].</summary>
public abstract class ImageTower : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the tower base.</summary>
    protected ImageTower(string name) : base(name) { }

    /// <summary>Called with named intermediate tensors (batch-first, e.g. "visual.ln_pre.out") when set.</summary>
    public Action<string, Tensor>? Probe { get; set; }

    /// <summary>Input side length in pixels.</summary>
    public abstract int InputResolution { get; }

    /// <summary>Drops anything derived from the weights (e.g. folded BatchNorm); called after weights change.</summary>
    public virtual void InvalidateCaches() { }

    /// <summary>Reports an intermediate to <see cref="Probe"/>.</summary>
    protected void Report(string name, Tensor t) => Probe?.Invoke(name, t);
}
