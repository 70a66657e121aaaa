using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ClipSharp.Training;

/// <summary>Hyperparameters of <see cref="ClipAdamW"/>.</summary>
/// <param name="Beta1">First-moment decay.</param>
/// <param name="Beta2">Second-moment decay.</param>
/// <param name="Eps">Denominator term.</param>
/// <param name="WeightDecay">Decoupled weight decay, applied only to parameters with ≥ 2 dimensions.</param>
public sealed record AdamWSettings(double Beta1, double Beta2, double Eps, double WeightDecay)
{
    /// <summary>CLIP's defaults: (0.9, 0.98, 1e-6) for a ViT image tower, (0.9, 0.999, 1e-8) for the ResNet.</summary>
    public static AdamWSettings For(bool vit, double weightDecay) =>
        vit ? new(0.9, 0.98, 1e-6, weightDecay) : new(0.9, 0.999, 1e-8, weightDecay);
}

/// <summary>
/// AdamW (decoupled weight decay) over named parameters, with CLIP's grouping: no weight decay on parameters
/// with fewer than two dimensions (LayerNorm gains and biases, all biases, class embedding, logit_scale).
/// Its state (step count and both moments per parameter) is exposed by name so checkpoints can hold it exactly.
/// </summary>
public sealed class ClipAdamW : IDisposable
{
    private sealed class Slot(string name, Parameter p, bool decay)
    {
        public string Name { get; } = name;
        public Parameter P { get; } = p;
        public bool Decay { get; } = decay;
        public Tensor? M;
        public Tensor? V;
    }

    private readonly List<Slot> slots;

    /// <summary>Creates the optimiser for the trainable parameters (requires_grad) among <paramref name="parameters"/>.</summary>
    public ClipAdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, AdamWSettings settings)
    {
        Settings = settings;
        slots = parameters.Where(p => p.Parameter.requires_grad)
            .Select(p => new Slot(p.Name, p.Parameter, p.Parameter.dim() >= 2)).ToList();
    }

    /// <summary>The hyperparameters.</summary>
    public AdamWSettings Settings { get; }

    /// <summary>Optimiser steps taken so far (drives bias correction).</summary>
    public long StepCount { get; private set; }

    /// <summary>Names of the parameters that get weight decay.</summary>
    public IEnumerable<string> DecayedNames => slots.Where(s => s.Decay).Select(s => s.Name);

    /// <summary>Names of the parameters updated without weight decay.</summary>
    public IEnumerable<string> UndecayedNames => slots.Where(s => !s.Decay).Select(s => s.Name);

    /// <summary>The parameters this optimiser updates.</summary>
    public IEnumerable<Parameter> Parameters => slots.Select(s => s.P);

    /// <summary>One AdamW update with learning rate <paramref name="lr"/>; parameters without a gradient are skipped.</summary>
    public void Step(double lr)
    {
        using var _ = torch.no_grad();
        using var scope = NewDisposeScope();
        StepCount++;
        double b1 = Settings.Beta1, b2 = Settings.Beta2;
        double bc1 = 1 - Math.Pow(b1, StepCount);
        double bc2Sqrt = Math.Sqrt(1 - Math.Pow(b2, StepCount));
        // Scalars held in locals that are disposed after the loop stay reachable for every native call (see TorchScalars).
        using Scalar decay = (1 - lr * Settings.WeightDecay).ToScalar(), beta1 = b1.ToScalar(), oneMinusBeta1 = (1 - b1).ToScalar(),
            beta2 = b2.ToScalar(), oneMinusBeta2 = (1 - b2).ToScalar(), bias2 = bc2Sqrt.ToScalar(), eps = Settings.Eps.ToScalar(),
            stepSize = (-lr / bc1).ToScalar();
        foreach (var s in slots)
        {
            var g = s.P.grad;
            if (g is null) continue;
            if (s.M is null)
            {
                s.M = torch.zeros_like(s.P).DetachFromDisposeScope();
                s.V = torch.zeros_like(s.P).DetachFromDisposeScope();
            }
            if (s.Decay && Settings.WeightDecay != 0) s.P.mul_(decay);
            s.M.mul_(beta1).add_(g, alpha: oneMinusBeta1);
            s.V!.mul_(beta2).addcmul_(g, g, value: oneMinusBeta2);
            var denom = s.V.sqrt().div_(bias2).add_(eps, TorchScalars.One);
            s.P.addcdiv_(s.M, denom, value: stepSize);
        }
    }

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var s in slots)
        {
            var g = s.P.grad;
            if (g is null) continue;
            g.Dispose();
            s.P.grad = null;
        }
    }

    /// <summary>The moments by name: "exp_avg.&lt;param&gt;" and "exp_avg_sq.&lt;param&gt;" (live tensors, do not dispose).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> StateTensors()
    {
        foreach (var s in slots)
        {
            if (s.M is null) continue;
            yield return KeyValuePair.Create("exp_avg." + s.Name, s.M);
            yield return KeyValuePair.Create("exp_avg_sq." + s.Name, s.V!);
        }
    }

    /// <summary>Restores the step count and the moments (copied; missing entries mean "not started").</summary>
    public void LoadState(long step, IReadOnlyDictionary<string, Tensor> state)
    {
        using var _ = torch.no_grad();
        StepCount = step;
        foreach (var s in slots)
        {
            s.M?.Dispose(); s.V?.Dispose(); s.M = s.V = null;
            if (state.TryGetValue("exp_avg." + s.Name, out var m) && state.TryGetValue("exp_avg_sq." + s.Name, out var v))
            {
                s.M = m.to(s.P.dtype).clone().DetachFromDisposeScope();
                s.V = v.to(s.P.dtype).clone().DetachFromDisposeScope();
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var s in slots) { s.M?.Dispose(); s.V?.Dispose(); s.M = s.V = null; }
    }
}

/// <summary>Linear warm-up from 0 to the peak, then cosine decay to the minimum at the last step.</summary>
/// <param name="PeakLr">Learning rate at the end of warm-up.</param>
/// <param name="WarmupSteps">Warm-up length.</param>
/// <param name="TotalSteps">Total optimiser steps.</param>
/// <param name="MinLr">Learning rate at the end.</param>
public sealed record CosineSchedule(double PeakLr, int WarmupSteps, int TotalSteps, double MinLr = 0)
{
    /// <summary>Learning rate for the optimiser step with 0-based index <paramref name="step"/>.</summary>
    public double At(long step)
    {
        if (step < WarmupSteps) return PeakLr * (step + 1) / WarmupSteps;
        long decay = Math.Max(1, TotalSteps - WarmupSteps);
        double t = Math.Min(1.0, (double)(step - WarmupSteps) / decay);
        return MinLr + 0.5 * (PeakLr - MinLr) * (1 + Math.Cos(Math.PI * t));
    }
}
