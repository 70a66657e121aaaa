using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using ClipSharp.Cli;
using ClipSharp.Search;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Benchmarks;

/// <summary>
/// <c>clip bench ann</c>: the approximate index (USearch HNSW) against exact search, on random unit vectors or on the
/// embeddings of an existing index: build time, memory, recall@10 against the exact top 10 and query latency for a
/// list of search expansions (ef). With <c>--index</c> the queries are indexed rows ("more like this"), each row
/// itself left out of both result lists.
/// </summary>
internal static class AnnBenchmark
{
    public static Command Create()
    {
        var vectors = new Option<long>("--vectors") { Description = "Random unit vectors to index (ignored with --index)", DefaultValueFactory = _ => 1_000_000 };
        var dim = new Option<int>("--dim") { Description = "Their width", DefaultValueFactory = _ => 512 };
        var index = new Option<string?>("--index") { Description = "Use this index's embeddings instead of random vectors (queries: its rows, each left out of its own results)" };
        var queries = new Option<int>("--queries") { Description = "Queries", DefaultValueFactory = _ => 1000 };
        var defaults = new AnnOptions();
        var connectivity = new Option<int>("--connectivity") { Description = "HNSW M", DefaultValueFactory = _ => defaults.Connectivity };
        var expansionAdd = new Option<int>("--expansion-add") { Description = "HNSW efConstruction", DefaultValueFactory = _ => defaults.ExpansionAdd };
        var ef = new Option<string>("--ef") { Description = "Search expansions to measure, comma-separated", DefaultValueFactory = _ => "64,128,256,512,1024" };
        var storage = new Option<string>("--storage") { Description = "f16, f32 or i8", DefaultValueFactory = _ => "f16" };
        storage.AcceptOnlyFromAmong("f16", "f32", "i8");
        var threads = new Option<int>("--threads") { Description = "Build threads (0: one per core)", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1 };
        var markdown = new Option<string?>("--markdown") { Description = "Replace the section between <!-- ann:NAME:begin --> and <!-- ann:NAME:end --> of this file (appended when missing)" };
        var section = new Option<string>("--section") { Description = "NAME of that section", DefaultValueFactory = _ => "random" };
        var cmd = new Command("ann", "Approximate index (HNSW, USearch) against exact search: recall@10, latency p50/p99, build time, memory")
            { vectors, dim, index, queries, connectivity, expansionAdd, ef, storage, threads, seed, markdown, section };
        cmd.SetAction(r =>
        {
            var efs = r.GetValue(ef)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new CliException($"--ef: '{s}' is not a positive number")).ToArray();
            var options = new AnnOptions
            {
                Connectivity = r.GetValue(connectivity), ExpansionAdd = r.GetValue(expansionAdd), ExpansionSearch = efs[0],
                Storage = Enum.Parse<AnnStorage>(r.GetValue(storage)!, ignoreCase: true), Threads = r.GetValue(threads),
            };
            if (options.Connectivity < 2 || options.ExpansionAdd < 1) throw new CliException("--connectivity must be at least 2, --expansion-add at least 1");
            int q = r.GetValue(queries);
            if (q < 1) throw new CliException("--queries must be at least 1");
            string text = r.GetValue(index) is { } file
                ? RunOnIndex(file, q, options, efs, r.GetValue(seed))
                : RunRandom(r.GetValue(vectors), r.GetValue(dim), q, options, efs, r.GetValue(seed));
            Console.WriteLine(text);
            if (r.GetValue(markdown) is { } md) WriteSection(md, r.GetValue(section)!, text);
            return 0;
        });
        return cmd;
    }

    const long Chunk = 65_536;

    static string RunRandom(long n, int d, int queryCount, AnnOptions options, int[] efs, int seed)
    {
        if (n < 11 || d < 1) throw new CliException("--vectors must be at least 11 and --dim at least 1");
        double[]? load0 = MachineLoad.LoadAverage();
        torch.manual_seed(seed);
        var chunks = new List<Tensor>();
        for (long first = 0; first < n; first += Chunk)
            chunks.Add(nn.functional.normalize(torch.randn(Math.Min(Chunk, n - first), d), p: 2, dim: 1).contiguous());
        using var queries = nn.functional.normalize(torch.randn(queryCount, d), p: 2, dim: 1).contiguous();
        Console.Error.WriteLine($"ann bench: {n} random unit vectors of {d} dims, {queryCount} queries; exact top 10 …");
        var truth = ExactTop(chunks, queries, 10);
        var exactLatency = ExactLatency(chunks, queries, Math.Min(queryCount, 50));

        long rss0 = MachineLoad.CurrentRssBytes();
        var sw = Stopwatch.StartNew();
        using var ann = ApproximateIndex.Create(n, d, options, "bench");
        long firstRow = 0;
        var progress = Progress(sw);
        foreach (var c in chunks)
        {
            ann.AddRows(c, firstRow, n, progress);
            firstRow += c.shape[0];
        }
        double build = sw.Elapsed.TotalSeconds;
        long rss1 = MachineLoad.CurrentRssBytes();
        var qs = Rows(queries);
        var rows = Measure(ann, qs, truth, efs, exclude: null);
        foreach (var c in chunks) c.Dispose();
        double[]? load1 = MachineLoad.LoadAverage();
        return Report($"{n:N0} random unit vectors, {d} dims", n, d, queryCount, options, build, ann.MemoryBytes, rss1 - rss0, exactLatency, rows, load0, load1,
            "queries: other random unit vectors");
    }

    static string RunOnIndex(string file, int queryCount, AnnOptions options, int[] efs, int seed)
    {
        double[]? load0 = MachineLoad.LoadAverage();
        using var index = ImageIndex.Load(file);
        long n = index.Count;
        int d = (int)index.Dim;
        if (n < 12) throw new CliException($"{file}: {n} images; the benchmark needs at least 12");
        var rng = new Random(seed);
        var picks = Enumerable.Range(0, (int)n).OrderBy(_ => rng.Next()).Take(Math.Min(queryCount, (int)n)).ToArray();
        using var pickTensor = torch.tensor(picks.Select(p => (long)p).ToArray());
        using var queries = index.Embeddings.index_select(0, pickTensor).contiguous();
        var chunks = new List<Tensor> { index.Embeddings };
        Console.Error.WriteLine($"ann bench: {file}: {n} embeddings of {d} dims, {picks.Length} of them as queries; exact top 10 …");
        // The query row itself is rank 1 of both searches: ask for 11 and leave it out.
        var truth11 = ExactTop(chunks, queries, 11);
        var truth = truth11.Select((t, i) => t.Where(x => x != picks[i]).Take(10).ToArray()).ToArray();
        var exactLatency = ExactLatency(chunks, queries, Math.Min(picks.Length, 50));
        long rss0 = MachineLoad.CurrentRssBytes();
        var sw = Stopwatch.StartNew();
        using var ann = ApproximateIndex.Build(index, options, Progress(sw));
        double build = sw.Elapsed.TotalSeconds;
        long rss1 = MachineLoad.CurrentRssBytes();
        var rows = Measure(ann, Rows(queries), truth, efs, exclude: picks);
        double[]? load1 = MachineLoad.LoadAverage();
        return Report($"{Path.GetFileName(file)}: {n:N0} image embeddings, {d} dims", n, d, picks.Length, options, build, ann.MemoryBytes, rss1 - rss0, exactLatency, rows, load0, load1,
            "queries: indexed images (\"more like this\"), each left out of its own results");
    }

    static Action<long, long> Progress(Stopwatch sw)
    {
        int last = -1;
        return (done, total) =>
        {
            int tenth = (int)(10 * done / total);
            if (tenth != last) { last = tenth; Console.Error.WriteLine($"  added {done}/{total} ({sw.Elapsed.TotalSeconds:0} s)"); }
        };
    }

    static float[][] Rows(Tensor m)
    {
        var all = m.data<float>().ToArray();
        int d = (int)m.shape[1];
        return Enumerable.Range(0, (int)m.shape[0]).Select(i => all.AsSpan(i * d, d).ToArray()).ToArray();
    }

    /// <summary>Exact top-k rows of every query over the chunks (in order), by inner product.</summary>
    static long[][] ExactTop(List<Tensor> chunks, Tensor queries, int k)
    {
        using var scope = NewDisposeScope();
        Tensor? bestV = null, bestI = null;
        long offset = 0;
        foreach (var c in chunks)
        {
            var s = queries.mm(c.t());
            var (v, i) = s.topk((int)Math.Min(k, c.shape[0]), dim: 1);
            i = i.add(torch.tensor(offset), TorchScalars.IntOne);
            if (bestV is null) { bestV = v; bestI = i; }
            else
            {
                var cv = torch.cat([bestV, v], 1);
                var ci = torch.cat([bestI!, i], 1);
                var (tv, ti) = cv.topk(k, dim: 1);
                bestV = tv;
                bestI = ci.gather(1, ti);
            }
            offset += c.shape[0];
        }
        var flat = bestI!.contiguous().data<long>().ToArray();
        int kk = (int)bestI.shape[1];
        return Enumerable.Range(0, (int)queries.shape[0]).Select(q => flat.AsSpan(q * kk, kk).ToArray()).ToArray();
    }

    /// <summary>Exact search of one query at a time (matrix–vector product and top 10 over every chunk), p50/p99 in ms.</summary>
    static (double P50, double P99) ExactLatency(List<Tensor> chunks, Tensor queries, int count)
    {
        var times = new List<double>();
        for (int q = 0; q < count; q++)
        {
            using var scope = NewDisposeScope();
            var query = queries[q];
            var sw = Stopwatch.StartNew();
            var parts = new List<Tensor>();
            foreach (var c in chunks) parts.Add(c.mv(query).topk((int)Math.Min(10, c.shape[0])).values);
            _ = torch.cat(parts, 0).topk(10).values.data<float>().ToArray();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        return (Percentile(times, 0.5), Percentile(times, 0.99));
    }

    sealed record EfRow(int Ef, double Recall, double MinRecall, double P50, double P99);

    static List<EfRow> Measure(ApproximateIndex ann, float[][] queries, long[][] truth, int[] efs, int[]? exclude)
    {
        var rows = new List<EfRow>();
        foreach (var ef in efs)
        {
            ann.ExpansionSearch = ef;
            var times = new List<double>(queries.Length);
            double sum = 0, min = 1;
            for (int i = 0; i < queries.Length; i++)
            {
                var sw = Stopwatch.StartNew();
                var hits = ann.Search(queries[i], exclude is null ? 10 : 11);
                times.Add(sw.Elapsed.TotalMilliseconds);
                var found = hits.Select(h => (long)h.Row).Where(r => exclude is null || r != exclude[i]).Take(10).ToHashSet();
                double recall = truth[i].Count(found.Contains) / (double)truth[i].Length;
                sum += recall;
                min = Math.Min(min, recall);
            }
            var row = new EfRow(ef, sum / queries.Length, min, Percentile(times, 0.5), Percentile(times, 0.99));
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  ef {ef}: recall@10 {row.Recall:0.000}, p50 {row.P50:0.00} ms, p99 {row.P99:0.00} ms"));
            rows.Add(row);
        }
        return rows;
    }

    static double Percentile(List<double> xs, double p)
    {
        var s = xs.OrderBy(x => x).ToArray();
        return s[Math.Clamp((int)Math.Ceiling(p * s.Length) - 1, 0, s.Length - 1)];
    }

    static string Report(string what, long n, int d, int queries, AnnOptions o, double build, long nativeBytes, long rssDelta,
        (double P50, double P99) exact, List<EfRow> rows, double[]? load0, double[]? load1, string queryNote)
    {
        static string La(double[]? l) => l is null ? "n/a" : string.Join(' ', l.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)));
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(string.Create(inv, $"**{what}**, measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {MachineLoad.CpuModel()} ({Environment.ProcessorCount} logical CPUs); load average (1/5/15 min) before: {La(load0)}, after: {La(load1)}."));
        sb.AppendLine();
        sb.AppendLine(string.Create(inv, $"USearch HNSW, M={o.Connectivity}, ef_add={o.ExpansionAdd}, {o.Storage.ToString().ToLowerInvariant()} vectors, inner product; capacity reserved once, vectors added on {(o.Threads > 0 ? o.Threads : Environment.ProcessorCount)} threads. {queries} queries ({queryNote}), one at a time."));
        sb.AppendLine();
        sb.AppendLine(string.Create(inv, $"Build: {build:0.0} s ({n / Math.Max(build, 1e-9):0} vectors/s); native index {nativeBytes / 1048576.0:0} MiB (process RSS grew {rssDelta / 1048576.0:0} MiB); exact float32 matrix {n * d * 4.0 / 1048576:0} MiB."));
        sb.AppendLine(string.Create(inv, $"Exact search (matrix–vector product + top 10, libtorch, {Environment.ProcessorCount} threads): p50 {exact.P50:0.00} ms, p99 {exact.P99:0.00} ms."));
        sb.AppendLine();
        sb.AppendLine("| ef (expansion_search) | recall@10 (mean) | worst query | p50 ms | p99 ms | speed-up over exact (p50) |");
        sb.AppendLine("|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            sb.AppendLine(string.Create(inv, $"| {r.Ef} | {r.Recall:0.000} | {r.MinRecall:0.0} | {r.P50:0.00} | {r.P99:0.00} | {exact.P50 / Math.Max(r.P50, 1e-9):0.0}× |"));
        return sb.ToString();
    }

    static void WriteSection(string file, string name, string text)
    {
        string begin = $"<!-- ann:{name}:begin (generated by `clip bench ann`) -->", end = $"<!-- ann:{name}:end -->";
        string doc = File.Exists(file) ? File.ReadAllText(file) : "";
        int b = doc.IndexOf(begin, StringComparison.Ordinal), e = doc.IndexOf(end, StringComparison.Ordinal);
        string block = begin + "\n" + text.TrimEnd() + "\n" + end;
        doc = b >= 0 && e > b ? doc[..b] + block + doc[(e + end.Length)..] : doc.TrimEnd() + "\n\n" + block + "\n";
        File.WriteAllText(file, doc);
    }
}
