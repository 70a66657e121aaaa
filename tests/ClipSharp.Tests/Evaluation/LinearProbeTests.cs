using ClipSharp.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Evaluation;

public class LinearProbeTests
{
    /// <summary>Gaussian blobs around well-separated centres; <paramref name="flip"/> labels flipped at random.</summary>
    static (Tensor X, int[] Y) Blobs(int perClass, int classes, int dim, double spread, int seed, double flip = 0)
    {
        var rng = new Random(seed);
        var x = new float[perClass * classes * dim];
        var y = new int[perClass * classes];
        for (int c = 0; c < classes; c++)
            for (int i = 0; i < perClass; i++)
            {
                int row = c * perClass + i;
                y[row] = rng.NextDouble() < flip ? rng.Next(classes) : c;
                for (int k = 0; k < dim; k++)
                {
                    double centre = k == c ? 3 : 0;
                    double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
                    x[row * dim + k] = (float)(centre + spread * g);
                }
            }
        return (torch.tensor(x, [perClass * classes, dim]), y);
    }

    [Fact]
    public void ProbeSeparatesASeparableFeatureSet()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Blobs(20, 3, 5, 0.3, seed: 1);
        var model = LogisticRegression.Fit(x, y, 3, c: 1e4);
        Assert.Equal(1.0, model.Accuracy(x, y));
        Assert.True(model.Converged, $"not converged after {model.Iterations} iterations");
        // Unseen points from the same blobs.
        var (tx, ty) = Blobs(10, 3, 5, 0.3, seed: 2);
        Assert.Equal(1.0, model.Accuracy(tx, ty));
    }

    [Fact]
    public void GradientIsZeroAtTheOptimum()
    {
        // Check optimality independently: the gradient of the objective at the returned parameters is ~0.
        using var scope = NewDisposeScope();
        var (x, y) = Blobs(15, 3, 4, 1.5, seed: 3, flip: 0.2);
        double c = 0.5;
        var m = LogisticRegression.Fit(x, y, 3, c, new LogisticRegressionOptions { GradientTolerance = 1e-9 });
        using var _ = torch.enable_grad();
        var theta = torch.tensor(m.Parameters, ScalarType.Float64).requires_grad_(true);
        var w = theta.narrow(0, 0, 12).view(4, 3);
        var b = theta.narrow(0, 12, 3);
        using Scalar penalty = (1.0 / (2 * c * y.Length)).ToScalar();
        var loss = nn.functional.cross_entropy(x.to(ScalarType.Float64).matmul(w).add(b, TorchScalars.One), torch.tensor(y.Select(v => (long)v).ToArray()))
                   .add((w * w).sum(), penalty);
        loss.backward();
        double gmax = theta.grad!.abs().max().item<double>();
        Assert.True(gmax < 1e-6, $"max gradient {gmax} after {m.Iterations} iterations");
    }

    [Fact]
    public void TensorAndManagedObjectivesAgree()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Blobs(10, 4, 5, 1.0, seed: 9, flip: 0.1);
        var a = LogisticRegression.Fit(x, y, 4, 2.0, new LogisticRegressionOptions { ManagedWorkLimit = long.MaxValue, GradientTolerance = 1e-9 });
        var b = LogisticRegression.Fit(x, y, 4, 2.0, new LogisticRegressionOptions { ManagedWorkLimit = 0, GradientTolerance = 1e-9 });
        Assert.Equal(a.Objective, b.Objective, 9);
        for (int i = 0; i < a.Parameters.Length; i++) Assert.Equal(a.Parameters[i], b.Parameters[i], 4);
    }

    [Fact]
    public void CSweepPicksTheBestValidationC()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Blobs(12, 3, 6, 1.6, seed: 4, flip: 0.15);
        var (vx, vy) = Blobs(12, 3, 6, 1.6, seed: 5);
        var (best, sweep) = LinearProbe.SweepC(x, y, vx, vy, 3, new LogisticRegressionOptions { MaxIterations = 200 });
        Assert.All(LinearProbe.InitialGrid, c => Assert.Contains(sweep, p => Math.Abs(Math.Log10(p.C) - Math.Log10(c)) < 1e-9));
        double top = sweep.Max(p => p.ValidationAccuracy);
        var winners = sweep.Where(p => p.ValidationAccuracy == top).Select(p => p.C).ToList();
        Assert.Equal(winners.Min(), best, 9);
        // Refinement reached 8 steps per decade around the winner: its ±1/8-decade neighbours were tried (inside the range).
        foreach (var d in new[] { -0.125, 0.125 })
        {
            double n = Math.Log10(best) + d;
            if (n >= -6 && n <= 6) Assert.Contains(sweep, p => Math.Abs(Math.Log10(p.C) - n) < 1e-6);
        }
        Assert.True(sweep.Count < 7 + 2 * 4 + 1);
        // Independently: refitting at every swept C reproduces the accuracies, and none beats the chosen one.
        foreach (var p in sweep)
            Assert.Equal(p.ValidationAccuracy, LogisticRegression.Fit(x, y, 3, p.C, new LogisticRegressionOptions { MaxIterations = 200 }).Accuracy(vx, vy), 1);
    }

    [Fact]
    public void FewShotSamplerIsDeterministicPerSeed()
    {
        var labels = Enumerable.Range(0, 60).Select(i => i % 4).ToArray();
        var a = FewShotSampler.Sample(labels, 3, seed: 7);
        var b = FewShotSampler.Sample(labels, 3, seed: 7);
        var c = FewShotSampler.Sample(labels, 3, seed: 8);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(12, a.Length);
        Assert.All(Enumerable.Range(0, 4), k => Assert.Equal(3, a.Count(i => labels[i] == k)));
        Assert.Equal(a, a.Order().ToArray());
        // Fixed values: the draw does not depend on the process (no randomised hashing).
        Assert.Equal(FewShotSampler.Sample(labels, 1, 0), FewShotSampler.Sample(labels.ToList(), 1, 0));
        Assert.Equal(4, FewShotSampler.Sample([0, 0, 1, 1], 5, 1).Length); // fewer than k: all of them

        var (tr, va) = LinearProbe.StratifiedSplit(labels, 0.25, 3);
        Assert.Equal(60, tr.Length + va.Length);
        Assert.Empty(tr.Intersect(va));
        Assert.All(Enumerable.Range(0, 4), k => Assert.Equal(4, va.Count(i => labels[i] == k)));
        Assert.Equal(va, LinearProbe.StratifiedSplit(labels, 0.25, 3).Second);
    }
}
