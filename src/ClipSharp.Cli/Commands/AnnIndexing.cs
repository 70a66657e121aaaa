using System.Diagnostics;
using System.Globalization;
using ClipSharp.Search;

namespace ClipSharp.Cli.Commands;

/// <summary>The approximate index step of <c>clip index</c>: keeps NAME.index.ann in step with the exact index beside it.</summary>
internal static class AnnIndexing
{
    /// <summary>Builds and writes (atomically) the approximate index for <paramref name="index"/>, unless the file there already belongs to it with the same settings.</summary>
    public static void Update(ImageIndex index, string annPath, AnnOptions options, bool quiet)
    {
        if (File.Exists(annPath))
        {
            try
            {
                using var existing = ApproximateIndex.Open(annPath, index);
                if (existing.Options with { Threads = 0 } == options with { Threads = 0 })
                {
                    Console.WriteLine($"{annPath}: approximate index up to date");
                    return;
                }
            }
            catch (StaleApproximateIndexException) { } // built from the previous embeddings: rebuilt below
        }
        var sw = Stopwatch.StartNew();
        int lastPercent = -1;
        using var ann = ApproximateIndex.Build(index, options, quiet ? null : (done, total) =>
        {
            int percent = (int)(100 * done / Math.Max(1, total));
            if (percent / 10 != lastPercent / 10) { lastPercent = percent; Console.Error.WriteLine($"ann: {done}/{total} vectors"); }
        });
        ann.Save(annPath);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{annPath}: approximate index of {ann.Count} vectors (HNSW M={options.Connectivity}, ef_add={options.ExpansionAdd}, ef_search={options.ExpansionSearch}, {options.Storage.ToString().ToLowerInvariant()}) in {sw.Elapsed.TotalSeconds:0.0} s"));
    }
}
