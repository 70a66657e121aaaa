using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Evaluation;

/// <summary>Solver settings of <see cref="LogisticRegression.Fit"/>.</summary>
public sealed record LogisticRegressionOptions
{
    /// <summary>Maximum L-BFGS iterations (the paper uses 1,000).</summary>
    public int MaxIterations { get; init; } = 1000;

    /// <summary>Stop when the largest absolute gradient entry falls below this.</summary>
    public double GradientTolerance { get; init; } = 1e-6;

    /// <summary>Stop when the objective changes by less than this (relative) between iterations (about 64 machine epsilons, as scipy's L-BFGS-B uses).</summary>
    public double RelativeTolerance { get; init; } = 1.4e-14;

    /// <summary>Correction pairs kept by L-BFGS.</summary>
    public int History { get; init; } = 10;
}

/// <summary>A fitted multinomial logistic regression: logits = x · W + b.</summary>
public sealed class LogisticRegressionModel
{
    internal LogisticRegressionModel(double[] parameters, int dim, int classes, double c, int iterations, bool converged, double objective)
    {
        Parameters = parameters; Dim = dim; Classes = classes; C = c; Iterations = iterations; Converged = converged; Objective = objective;
    }

    /// <summary>W (row-major [Dim, Classes]) followed by b ([Classes]), float64.</summary>
    public double[] Parameters { get; }

    /// <summary>Feature dimension.</summary>
    public int Dim { get; }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>Inverse regularisation strength it was fitted with.</summary>
    public double C { get; }

    /// <summary>L-BFGS iterations used.</summary>
    public int Iterations { get; }

    /// <summary>True when a tolerance was met before the iteration limit.</summary>
    public bool Converged { get; }

    /// <summary>Final objective: mean cross-entropy + ‖W‖² / (2·C·N).</summary>
    public double Objective { get; }

    /// <summary>Logits [N, Classes] (float32) for features [N, Dim].</summary>
    public Tensor Logits(Tensor features)
    {
        using var scope = NewDisposeScope();
        var (w, b) = Split(torch.tensor(Parameters, ScalarType.Float64));
        return (features.to(ScalarType.Float64).matmul(w) + b).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Fraction of rows whose arg-max logit equals the label.</summary>
    public double Accuracy(Tensor features, IReadOnlyList<int> labels)
    {
        using var scope = NewDisposeScope();
        var pred = Logits(features).argmax(1).data<long>().ToArray();
        if (pred.Length == 0) return double.NaN;
        int ok = 0;
        for (int i = 0; i < pred.Length; i++) if (pred[i] == labels[i]) ok++;
        return (double)ok / pred.Length;
    }

    internal (Tensor W, Tensor B) Split(Tensor theta) =>
        (theta.narrow(0, 0, (long)Dim * Classes).view(Dim, Classes), theta.narrow(0, (long)Dim * Classes, Classes));
}

/// <summary>
/// Multinomial logistic regression with an L2 penalty on the weights (not the bias), fitted exactly (to tolerance) with
/// L-BFGS in float64. The objective, mean cross-entropy + ‖W‖² / (2·C·N), has the same minimiser as scikit-learn's
/// <c>C·Σ loss + ½‖W‖²</c>, so C means the same thing as in the paper's probes.
/// </summary>
public static class LogisticRegression
{
    /// <summary>Fits the model.</summary>
    /// <param name="features">[N, D] features.</param>
    /// <param name="labels">N labels in [0, classes).</param>
    /// <param name="classes">Number of classes.</param>
    /// <param name="c">Inverse regularisation strength (&gt; 0).</param>
    /// <param name="options">Solver settings.</param>
    /// <param name="warmStart">Parameters to start from (e.g. the fit at a neighbouring C), or null for zeros.</param>
    public static LogisticRegressionModel Fit(Tensor features, IReadOnlyList<int> labels, int classes, double c,
        LogisticRegressionOptions? options = null, LogisticRegressionModel? warmStart = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        if (features.dim() != 2 || features.shape[0] != labels.Count) throw new ArgumentException("features must be [N, D] with one label per row");
        if (!(c > 0)) throw new ArgumentOutOfRangeException(nameof(c), "C must be positive");
        options ??= new LogisticRegressionOptions();
        int n = labels.Count, d = (int)features.shape[1];
        if (n == 0) throw new ArgumentException("no training examples");

        using var scope = NewDisposeScope();
        using var grad = torch.enable_grad();
        var x = features.to(ScalarType.Float64).detach();
        var y = torch.tensor(labels.Select(l => (long)l).ToArray());
        double penalty = 1.0 / (2 * c * n);
        long p = (long)d * classes + classes;
        var theta = warmStart is not null && warmStart.Dim == d && warmStart.Classes == classes
            ? torch.tensor(warmStart.Parameters, ScalarType.Float64) : torch.zeros(p, ScalarType.Float64);

        (double F, Tensor G) Eval(Tensor t)
        {
            using var s = NewDisposeScope();
            var leaf = t.detach().requires_grad_(true);
            var w = leaf.narrow(0, 0, (long)d * classes).view(d, classes);
            var b = leaf.narrow(0, (long)d * classes, classes);
            var loss = nn.functional.cross_entropy(x.matmul(w) + b, y) + penalty * w.pow(2).sum();
            loss.backward();
            return (loss.item<double>(), leaf.grad!.detach().clone().MoveToOuterDisposeScope());
        }

        var (f, g) = Eval(theta);
        var sList = new List<Tensor>();
        var yList = new List<Tensor>();
        var rho = new List<double>();
        int iter = 0;
        bool converged = false;
        while (iter < options.MaxIterations)
        {
            if (g.abs().max().item<double>() < options.GradientTolerance) { converged = true; break; }
            // Two-loop recursion: direction = -H·g.
            var q = g.clone();
            var alpha = new double[sList.Count];
            for (int i = sList.Count - 1; i >= 0; i--)
            {
                alpha[i] = rho[i] * sList[i].dot(q).item<double>();
                q = q - alpha[i] * yList[i];
            }
            double gamma = sList.Count > 0
                ? sList[^1].dot(yList[^1]).item<double>() / yList[^1].dot(yList[^1]).item<double>()
                : 1.0 / Math.Max(g.norm().item<double>(), 1e-12);
            var r = q * gamma;
            for (int i = 0; i < sList.Count; i++)
            {
                double beta = rho[i] * yList[i].dot(r).item<double>();
                r = r + (alpha[i] - beta) * sList[i];
            }
            var dir = -r;
            double slope = g.dot(dir).item<double>();
            if (slope >= 0) { dir = -g; slope = -g.dot(g).item<double>(); sList.Clear(); yList.Clear(); rho.Clear(); }

            // Backtracking line search with the Armijo condition.
            double step = 1.0, fNew = double.NaN;
            Tensor? thetaNew = null, gNew = null;
            for (int ls = 0; ls < 40; ls++)
            {
                var cand = theta + step * dir;
                var (fc, gc) = Eval(cand);
                if (double.IsFinite(fc) && fc <= f + 1e-4 * step * slope) { thetaNew = cand; gNew = gc; fNew = fc; break; }
                step *= 0.5;
            }
            iter++;
            if (thetaNew is null) { converged = true; break; } // no decrease possible at double precision
            var sv = thetaNew - theta;
            var yv = gNew! - g;
            double sy = sv.dot(yv).item<double>();
            if (sy > 1e-12)
            {
                sList.Add(sv); yList.Add(yv); rho.Add(1.0 / sy);
                if (sList.Count > options.History) { sList.RemoveAt(0); yList.RemoveAt(0); rho.RemoveAt(0); }
            }
            bool small = Math.Abs(f - fNew) <= options.RelativeTolerance * Math.Max(Math.Max(Math.Abs(f), Math.Abs(fNew)), 1.0);
            theta = thetaNew; g = gNew!; f = fNew;
            if (small) { converged = true; break; }
        }
        return new LogisticRegressionModel(theta.data<double>().ToArray(), d, classes, c, iter, converged, f);
    }
}
