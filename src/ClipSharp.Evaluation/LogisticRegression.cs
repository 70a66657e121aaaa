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

    /// <summary>Problems with N·D·classes up to this size evaluate the objective in managed code instead of with tensor ops.</summary>
    public long ManagedWorkLimit { get; init; } = 2_000_000;

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
        return features.to(ScalarType.Float64).matmul(w).add(b, TorchScalars.One).to(ScalarType.Float32).MoveToOuterDisposeScope();
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
        using var noGrad = torch.no_grad();
        var x = features.to(ScalarType.Float64).detach();
        var y = torch.tensor(labels.Select(l => (long)l).ToArray());
        double penalty = 1.0 / (2 * c * n);
        int p = checked(d * classes + classes);
        var theta = warmStart is not null && warmStart.Dim == d && warmStart.Classes == classes
            ? (double[])warmStart.Parameters.Clone() : new double[p];

        var onehot = nn.functional.one_hot(y, classes).to(ScalarType.Float64);
        var xt = x.t().contiguous();
        // Objective and analytic gradient on TorchSharp tensors: ∂/∂W = Xᵀ(softmax − onehot)/N + W/(C·N), ∂/∂b = mean(softmax − onehot).
        // The L-BFGS bookkeeping below works on plain arrays, which avoids dozens of tiny tensor ops per iteration.
        // Small problems: the same objective in managed code (tensor-op overhead would dominate).
        bool managed = (long)n * d * classes <= options.ManagedWorkLimit;
        double[] xs = managed ? x.contiguous().data<double>().ToArray() : [];
        int[] ys = [.. labels];
        (double F, double[] G) EvalManaged(double[] t)
        {
            var grad = new double[p];
            var z = new double[classes];
            double loss = 0;
            int wLen = d * classes;
            for (int i = 0; i < n; i++)
            {
                int row = i * d;
                for (int k = 0; k < classes; k++) z[k] = t[wLen + k];
                for (int j = 0; j < d; j++)
                {
                    double xv = xs[row + j];
                    if (xv == 0) continue;
                    int wr = j * classes;
                    for (int k = 0; k < classes; k++) z[k] += xv * t[wr + k];
                }
                double max = double.NegativeInfinity;
                for (int k = 0; k < classes; k++) max = Math.Max(max, z[k]);
                double sum = 0;
                for (int k = 0; k < classes; k++) { z[k] = Math.Exp(z[k] - max); sum += z[k]; }
                loss += Math.Log(sum) + max - (Math.Log(z[ys[i]]) + max);
                for (int k = 0; k < classes; k++) z[k] = z[k] / sum - (k == ys[i] ? 1 : 0);
                for (int j = 0; j < d; j++)
                {
                    double xv = xs[row + j];
                    if (xv == 0) continue;
                    int wr = j * classes;
                    for (int k = 0; k < classes; k++) grad[wr + k] += xv * z[k];
                }
                for (int k = 0; k < classes; k++) grad[wLen + k] += z[k];
            }
            double reg = 0;
            for (int j = 0; j < wLen; j++) reg += t[j] * t[j];
            for (int j = 0; j < p; j++) grad[j] /= n;
            for (int j = 0; j < wLen; j++) grad[j] += 2 * penalty * t[j];
            return (loss / n + penalty * reg, grad);
        }

        // Scalars of the tensor objective, held until Fit returns (see TorchScalars).
        using Scalar two = 2.ToScalar(), count = n.ToScalar(), gradPenalty = (2 * penalty).ToScalar();
        (double F, double[] G) Eval(double[] t)
        {
            if (managed) return EvalManaged(t);
            using var s = NewDisposeScope();
            var tt = torch.tensor(t, ScalarType.Float64);
            var w = tt.narrow(0, 0, (long)d * classes).view(d, classes);
            var b = tt.narrow(0, (long)d * classes, classes);
            var logp = x.matmul(w).add(b, TorchScalars.One).log_softmax(1);
            double loss = -(logp * onehot).sum().item<double>() / n + penalty * w.pow(two).sum().item<double>();
            var diff = (logp.exp() - onehot).div(count);
            var gw = xt.matmul(diff).add(w.mul(gradPenalty), TorchScalars.One);
            var gb = diff.sum(dim: 0);
            return (loss, torch.cat([gw.reshape(-1), gb]).data<double>().ToArray());
        }
        static double Dot(double[] a, double[] b)
        {
            double sum = 0;
            for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
            return sum;
        }

        var (f, g) = Eval(theta);
        var sList = new List<double[]>();
        var yList = new List<double[]>();
        var rho = new List<double>();
        int iter = 0;
        bool converged = false;
        var dir = new double[p];
        var cand = new double[p];
        while (iter < options.MaxIterations)
        {
            double gmax = 0;
            foreach (var v in g) gmax = Math.Max(gmax, Math.Abs(v));
            if (gmax < options.GradientTolerance) { converged = true; break; }
            // Two-loop recursion: dir = −H·g.
            var q = (double[])g.Clone();
            var alpha = new double[sList.Count];
            for (int i = sList.Count - 1; i >= 0; i--)
            {
                alpha[i] = rho[i] * Dot(sList[i], q);
                var yi = yList[i];
                for (int j = 0; j < p; j++) q[j] -= alpha[i] * yi[j];
            }
            double gamma = sList.Count > 0 ? Dot(sList[^1], yList[^1]) / Dot(yList[^1], yList[^1]) : 1.0 / Math.Max(Math.Sqrt(Dot(g, g)), 1e-12);
            for (int j = 0; j < p; j++) q[j] *= gamma;
            for (int i = 0; i < sList.Count; i++)
            {
                double beta = rho[i] * Dot(yList[i], q);
                var si = sList[i];
                for (int j = 0; j < p; j++) q[j] += (alpha[i] - beta) * si[j];
            }
            for (int j = 0; j < p; j++) dir[j] = -q[j];
            double slope = Dot(g, dir);
            if (slope >= 0)
            {
                for (int j = 0; j < p; j++) dir[j] = -g[j];
                slope = -Dot(g, g);
                sList.Clear(); yList.Clear(); rho.Clear();
            }

            // Backtracking line search with the Armijo condition.
            double step = 1.0, fNew = double.NaN;
            double[]? gNew = null;
            for (int ls = 0; ls < 40; ls++)
            {
                for (int j = 0; j < p; j++) cand[j] = theta[j] + step * dir[j];
                var (fc, gc) = Eval(cand);
                if (double.IsFinite(fc) && fc <= f + 1e-4 * step * slope) { gNew = gc; fNew = fc; break; }
                step *= 0.5;
            }
            iter++;
            if (gNew is null) { converged = true; break; } // no decrease possible at double precision
            var sv = new double[p];
            var yv = new double[p];
            for (int j = 0; j < p; j++) { sv[j] = cand[j] - theta[j]; yv[j] = gNew[j] - g[j]; }
            double sy = Dot(sv, yv);
            if (sy > 1e-12)
            {
                sList.Add(sv); yList.Add(yv); rho.Add(1.0 / sy);
                if (sList.Count > options.History) { sList.RemoveAt(0); yList.RemoveAt(0); rho.RemoveAt(0); }
            }
            bool small = Math.Abs(f - fNew) <= options.RelativeTolerance * Math.Max(Math.Max(Math.Abs(f), Math.Abs(fNew)), 1.0);
            Array.Copy(cand, theta, p);
            g = gNew; f = fNew;
            if (small) { converged = true; break; }
        }
        return new LogisticRegressionModel(theta, d, classes, c, iter, converged, f);
    }
}
