using System.Diagnostics;

namespace ClipSharp.Text;

/// <summary>Throughput of one benchmark configuration, in texts per second.</summary>
/// <param name="Name">Configuration name.</param>
/// <param name="Texts">Texts tokenized per run.</param>
/// <param name="Median">Median throughput over the timed runs.</param>
/// <param name="Min">Slowest run.</param>
/// <param name="Max">Fastest run.</param>
internal sealed record TokenizerThroughput(string Name, int Texts, double Median, double Min, double Max);

/// <summary>
/// Tokenizer throughput benchmark on the 80 × 1000 ImageNet zero-shot prompts (the embedded
/// <c>imagenet_templates.txt</c> filled with <c>imagenet_classes.txt</c>).
/// </summary>
internal static class TokenizerBenchmark
{
    /// <summary>Loads an embedded ZeroShot data file (e.g. <c>imagenet_classes.txt</c>) as lines.</summary>
    /// <param name="fileName">File name under <c>ZeroShot/Data</c>.</param>
    /// <returns>The non-empty lines in order.</returns>
    public static IReadOnlyList<string> LoadEmbeddedLines(string fileName)
    {
        var asm = typeof(ClipSharp.ZeroShot.PromptSets).Assembly; // the data ships in ClipSharp.Core
        string resource = "ClipSharp.ZeroShot.Data." + fileName;
        using var stream = asm.GetManifestResourceStream(resource)
            ?? throw new FileNotFoundException($"Embedded resource {resource} not found.");
        using var reader = new StreamReader(stream);
        var lines = new List<string>();
        while (reader.ReadLine() is { } line) if (line.Length > 0) lines.Add(line);
        return lines;
    }

    /// <summary>All ImageNet prompts: every template filled with every class name (template-major order per class).</summary>
    /// <returns>80 000 prompts.</returns>
    public static IReadOnlyList<string> ImageNetPrompts()
    {
        var classes = LoadEmbeddedLines("imagenet_classes.txt");
        var templates = LoadEmbeddedLines("imagenet_templates.txt");
        var prompts = new List<string>(classes.Count * templates.Count);
        foreach (var c in classes)
            foreach (var t in templates)
                prompts.Add(t.Replace("{}", c, StringComparison.Ordinal));
        return prompts;
    }

    /// <summary>
    /// Tokenizes all ImageNet prompts (context 77, truncate) after one warm-up pass, then
    /// <paramref name="runs"/> timed passes single-threaded and with <see cref="Parallel.For(int, int, Action{int})"/>,
    /// and prints texts/s (median, min, max) for each.
    /// </summary>
    /// <param name="tok">Tokenizer to measure. Its BPE cache is warm after the first pass, as in real use.</param>
    /// <param name="output">Where to print the results.</param>
    /// <param name="runs">Number of timed runs per configuration (at least 5 recommended).</param>
    /// <returns>The single-threaded and parallel results.</returns>
    public static IReadOnlyList<TokenizerThroughput> Run(ClipTokenizer tok, TextWriter output, int runs = 5)
    {
        ArgumentNullException.ThrowIfNull(tok);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        var prompts = ImageNetPrompts();
        var sink = new int[prompts.Count];

        void Serial()
        {
            for (int i = 0; i < prompts.Count; i++) sink[i] = tok.Tokenize(prompts[i], truncate: true)[1];
        }
        void Parallelized() =>
            Parallel.For(0, prompts.Count, i => sink[i] = tok.Tokenize(prompts[i], truncate: true)[1]);

        output.WriteLine($"Tokenizer benchmark: {prompts.Count} ImageNet prompts, {runs} timed runs, {Environment.ProcessorCount} logical CPUs");
        var results = new List<TokenizerThroughput>();
        foreach (var (name, action) in new (string, Action)[] { ("single-threaded", Serial), ("Parallel.For", Parallelized) })
        {
            action(); // warm-up (JIT, BPE cache)
            var rates = new double[runs];
            for (int r = 0; r < runs; r++)
            {
                var sw = Stopwatch.StartNew();
                action();
                rates[r] = prompts.Count / sw.Elapsed.TotalSeconds;
            }
            Array.Sort(rates);
            double median = runs % 2 == 1 ? rates[runs / 2] : (rates[runs / 2 - 1] + rates[runs / 2]) / 2;
            var result = new TokenizerThroughput(name, prompts.Count, median, rates[0], rates[^1]);
            results.Add(result);
            output.WriteLine($"  {name,-16} median {median,12:N0} texts/s   min {rates[0],12:N0}   max {rates[^1],12:N0}");
        }
        return results;
    }
}
