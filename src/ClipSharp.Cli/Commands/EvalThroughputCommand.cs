using System.CommandLine;
using ClipSharp.Evaluation;
using ClipSharp.Modeling;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip eval throughput</c>: end-to-end evaluation images/s against model-only encode images/s.</summary>
internal static class EvalThroughputCommand
{
    public static Command Create()
    {
        var model = Common.ModelOption(required: false);
        var config = Common.ConfigOption();
        var arch = new Option<string>("--arch") { Description = $"Randomly initialised architecture when no --model is given ({string.Join(", ", NamedArchitectures.Names)})", DefaultValueFactory = _ => "ViT-B/32" };
        var images = new Option<string?>("--images") { Description = "Folder of images to use (default: generate 500×375 JPEGs in a temporary folder)" };
        var count = new Option<int>("--count") { Description = "Images to generate", DefaultValueFactory = _ => 256 };
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass", DefaultValueFactory = _ => 64 };
        var workers = new Option<int>("--workers") { Description = "Decoding threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var output = new Option<string?>("--output", "-o") { Description = "Also write the result as JSON here" };
        var cmd = new Command("throughput", "Benchmark: end-to-end eval images/s vs model-only encode images/s (target ≥ 0.9)") { model, config, arch, images, count, batch, workers, output };
        cmd.SetAction(r =>
        {
            using var m = r.GetValue(model) is string path ? Common.LoadModel(path, r.GetValue(config))
                : NamedArchitectures.TryGet(r.GetValue(arch)!, out var cfg) ? new ClipModel(cfg) : throw new CliException($"unknown architecture {r.GetValue(arch)}");
            string? tmp = null;
            try
            {
                IReadOnlyList<string> files;
                if (r.GetValue(images) is string dir) files = ClipSharp.Data.Readers.DatasetFiles.ListImages(dir);
                else
                {
                    tmp = Directory.CreateTempSubdirectory("clipsharp-bench-").FullName;
                    files = ThroughputBenchmark.WriteImages(tmp, Math.Max(1, r.GetValue(count)));
                }
                Console.WriteLine($"{files.Count} images, batch {r.GetValue(batch)}, {r.GetValue(workers)} decode threads, {Environment.ProcessorCount} CPUs, {m.Config}");
                var result = ThroughputBenchmark.Run(m, files, r.GetValue(batch), r.GetValue(workers), Console.Out);
                Console.WriteLine(FormattableString.Invariant($"ratio end-to-end / model-only: {result.Ratio:0.000} (target ≥ 0.9)"));
                if (r.GetValue(output) is string o)
                    EvalReports.WriteJson(o, "throughput", r.GetValue(model) ?? r.GetValue(arch), new { batch_size = r.GetValue(batch), workers = r.GetValue(workers) }, new { result.Images, result.BatchSize, result.ModelOnlyImagesPerSecond, result.EndToEndImagesPerSecond, result.SerialImagesPerSecond, result.Ratio });
                return 0;
            }
            finally { if (tmp is not null) Directory.Delete(tmp, true); }
        });
        return cmd;
    }
}
