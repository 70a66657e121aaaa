namespace ClipSharp.Benchmarks;

/// <summary>How gradients are handled around inference calls (one of the measured means).</summary>
internal enum GradMode
{
    /// <summary>Autograd on (parameters require grad): records a graph nobody uses.</summary>
    Enabled,
    /// <summary><c>torch.no_grad()</c>.</summary>
    NoGrad,
    /// <summary><c>torch.inference_mode()</c>: no graph and no version-counter bookkeeping.</summary>
    Inference,
}

/// <summary>One benchmark row: a workload, a batch size and a precision.</summary>
/// <param name="Id">Stable id, e.g. <c>vit-b32/32/bf16</c> (workload/batch/precision).</param>
/// <param name="Workload">Workload kind: gemm, vit-b32, vit-b16, rn50, text, train, zeroshot-files, zeroshot-model, tokenizer.</param>
/// <param name="Batch">Batch size (matrix side for gemm; 0 where it does not apply).</param>
/// <param name="Precision">fp32 or bf16 (or the configuration name for the tokenizer).</param>
internal sealed record BenchmarkRow(string Id, string Workload, int Batch, string Precision)
{
    /// <summary>True for the bfloat16 variant.</summary>
    public bool BFloat16 => Precision == "bf16";
}

/// <summary>Knobs shared by every workload; the defaults are the settings that measured fastest.</summary>
internal sealed record BenchmarkOptions
{
    /// <summary>Gradient handling around inference calls.</summary>
    public GradMode GradMode { get; init; } = GradMode.Inference;

    /// <summary>Number of JPEG files (and images per run) for the end-to-end zero-shot rows.</summary>
    public int ZeroShotImages { get; init; } = 128;

    /// <summary>Directory for generated files (JPEGs); a temporary one when null.</summary>
    public string? WorkDirectory { get; init; }
}

/// <summary>A measurable unit of work, set up once and then called repeatedly.</summary>
internal interface IBenchmarkWorkload : IDisposable
{
    /// <summary>What runs, for the report (e.g. "ClipModel.EncodeImage, inference_mode").</summary>
    string Implementation { get; }

    /// <summary>Units processed by one <see cref="Run"/> (images, texts, samples, products).</summary>
    double UnitsPerRun { get; }

    /// <summary>Unit name for throughputs, e.g. "img/s".</summary>
    string Unit { get; }

    /// <summary>FLOP of one <see cref="Run"/> (0 when not meaningful).</summary>
    double FlopPerRun { get; }

    /// <summary>Does the work once.</summary>
    void Run();
}

/// <summary>
/// Supplies workloads for some rows, overriding the built-in ones. The benchmark discovers every non-abstract
/// implementation with a public parameterless constructor in the ClipSharp assemblies, so the training and
/// evaluation code can plug their own step and pipeline into the <c>train</c> and <c>zeroshot-files</c> rows
/// just by adding a provider class.
/// </summary>
internal interface IBenchmarkWorkloadProvider
{
    /// <summary>A workload for <paramref name="row"/>, or null to leave the row to others.</summary>
    IBenchmarkWorkload? TryCreate(BenchmarkRow row, BenchmarkOptions options);
}

/// <summary>Finds the workload for a row: a discovered <see cref="IBenchmarkWorkloadProvider"/> first, else the built-ins.</summary>
internal static class BenchmarkWorkloads
{
    /// <summary>Providers found by reflection in the loaded ClipSharp assemblies.</summary>
    public static IReadOnlyList<IBenchmarkWorkloadProvider> DiscoverProviders()
    {
        var found = new List<IBenchmarkWorkloadProvider>();
        foreach (var asm in AppDomain.CurrentDomain.GetAssemblies().Where(a => a.GetName().Name?.StartsWith("ClipSharp", StringComparison.Ordinal) == true))
        {
            Type[] types;
            try { types = asm.GetTypes(); }
            catch (System.Reflection.ReflectionTypeLoadException e) { types = e.Types.Where(t => t is not null).ToArray()!; }
            foreach (var t in types)
                if (typeof(IBenchmarkWorkloadProvider).IsAssignableFrom(t) && !t.IsAbstract && !t.IsInterface
                    && t != typeof(BuiltInWorkloadProvider) && t.GetConstructor(Type.EmptyTypes) is not null)
                    found.Add((IBenchmarkWorkloadProvider)Activator.CreateInstance(t)!);
        }
        return found;
    }

    /// <summary>Creates the workload for <paramref name="row"/>.</summary>
    public static IBenchmarkWorkload Create(BenchmarkRow row, BenchmarkOptions options)
    {
        foreach (var p in DiscoverProviders())
            if (p.TryCreate(row, options) is { } w) return w;
        return new BuiltInWorkloadProvider().TryCreate(row, options)
            ?? throw new ArgumentException($"no workload for benchmark row '{row.Id}'");
    }
}
