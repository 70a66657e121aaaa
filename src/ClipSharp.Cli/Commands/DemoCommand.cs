using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using ClipSharp.Data.Demo;
using ClipSharp.Data.Readers;
using ClipSharp.Text;

namespace ClipSharp.Cli.Commands;

/// <summary>
/// <c>clip demo</c>: the whole idea of CLIP end to end on one machine. Builds the demo corpus if missing, learns a
/// BPE vocabulary from its training captions, trains a CPU-sized CLIP from scratch, and evaluates it zero-shot on
/// emoji subgroups it never saw, on trained concepts drawn by unseen artists, and on Fashion-MNIST.
/// Each stage reuses what an earlier run left (corpus, vocabulary, finished training; a killed training run resumes
/// from its last checkpoint).
/// </summary>
internal static class DemoCommand
{
    /// <summary>The demo model: a ViT with 8-px patches on 64-px images and a narrow text tower with a 32-token context.</summary>
    internal static JsonObject ModelConfig(int vocabSize) => new()
    {
        ["embed_dim"] = 128,
        ["image_resolution"] = 64,
        ["vision_layers"] = 4,
        ["vision_width"] = 128,
        ["vision_patch_size"] = 8,
        ["vision_heads"] = 2,
        ["context_length"] = 32,
        ["vocab_size"] = vocabSize,
        ["transformer_width"] = 128,
        ["transformer_heads"] = 2,
        ["transformer_layers"] = 4,
    };

    public static Command Create()
    {
        var output = new Option<string>("--output", "-o") { Description = "Run folder", DefaultValueFactory = _ => "runs/demo" };
        var cache = new Option<string?>("--cache") { Description = "Corpus cache folder (default: $CLIPSHARP_CACHE, else .cache/demo-corpus in the repository)" };
        var steps = new Option<int>("--steps") { Description = "Training steps (batch 128)", DefaultValueFactory = _ => 600 };
        var merges = new Option<int>("--bpe-merges") { Description = "BPE merges learned from the training captions", DefaultValueFactory = _ => 4000 };
        var retrain = new Option<bool>("--retrain") { Description = "Train again even if the run folder holds finished weights" };
        var set = new Option<string[]>("--set")
        {
            Description = "Override a value of the training config by dotted path, e.g. --set data.augment.grayscale=0.2 (repeatable; recorded in demo-config.json)",
        };
        var cmd = new Command("demo", "Build the demo corpus, train a small CLIP from scratch on it, and evaluate it zero-shot") { output, cache, steps, merges, retrain, set };
        cmd.SetAction(r => Run(Path.GetFullPath(r.GetValue(output)!), r.GetValue(cache), r.GetValue(steps), r.GetValue(merges), r.GetValue(retrain), r.GetValue(set) ?? []));
        return cmd;
    }

    static int Invoke(params string[] args)
    {
        int code = Program.BuildRoot().Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        if (code != 0) throw new CliException($"demo: 'clip {string.Join(" ", args.Take(2))}' failed (exit code {code})", code);
        return code;
    }

    static void Stage(string text) => Console.Error.WriteLine($"\n== {text}");

    static int Run(string runDir, string? cacheOption, int steps, int merges, bool retrain, string[] overrides)
    {
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(runDir);

        Stage("1/5 corpus");
        var cacheDir = cacheOption is { Length: > 0 } c ? Path.GetFullPath(c) : DemoCorpusBuilder.DefaultCacheDir(Environment.CurrentDirectory);
        var corpusDir = DemoCorpusBuilder.DefaultOutputDir(cacheDir);
        DemoCorpusResult corpus;
        try
        {
            corpus = new DemoCorpusBuilder(new DemoCorpusOptions(cacheDir, corpusDir) { Log = m => Console.Error.WriteLine(m) }).Build();
        }
        catch (DemoCorpusException e)
        {
            throw new CliException(e.Message);
        }
        Console.Error.WriteLine(corpus.WasComplete ? $"corpus ready at {corpusDir}" : $"corpus built in {corpus.Seconds:F0} s at {corpusDir}");

        Stage("2/5 tokenizer");
        var vocabPath = Path.Combine(runDir, "bpe-demo.txt.gz");
        if (!File.Exists(vocabPath))
        {
            var captions = new CsvDataset(Path.Combine(corpusDir, "train.csv"), new TableColumns { ImageColumn = "image", CaptionColumn = "caption" })
                .Pairs().SelectMany(p => p.Captions);
            var sw = Stopwatch.StartNew();
            BpeTrainer.TrainToFile(captions, merges, vocabPath);
            Console.Error.WriteLine($"learned {merges} BPE merges from the training captions in {sw.Elapsed.TotalSeconds:F0} s");
        }
        var tokenizer = ClipTokenizer.FromBpeFile(vocabPath);
        Console.Error.WriteLine($"vocabulary: {tokenizer.VocabSize} tokens ({vocabPath})");

        Stage("3/5 training");
        var configPath = Path.Combine(runDir, "demo-config.json");
        var final = Path.Combine(runDir, "final.safetensors");
        var config = new JsonObject
        {
            ["seed"] = 0,
            ["model"] = new JsonObject { ["config"] = ModelConfig(tokenizer.VocabSize) },
            ["data"] = new JsonObject
            {
                ["train"] = new JsonArray(new JsonObject { ["type"] = "csv", ["path"] = Path.Combine(corpusDir, "train.csv"), ["image_column"] = "image", ["caption_column"] = "caption" }),
                ["val"] = new JsonObject { ["type"] = "csv", ["path"] = Path.Combine(corpusDir, "val.csv"), ["image_column"] = "image", ["caption_column"] = "caption" },
                ["vocab"] = vocabPath,
                ["batch_size"] = 128,
            },
            ["optimizer"] = new JsonObject { ["lr"] = 1e-3, ["weight_decay"] = 0.1 },
            ["schedule"] = new JsonObject { ["steps"] = steps, ["warmup_steps"] = Math.Max(1, steps / 20) },
            ["output"] = new JsonObject
            {
                ["dir"] = runDir, ["checkpoint_every"] = Math.Max(50, steps / 10), ["keep_last"] = 2,
                ["eval_every"] = Math.Max(50, steps / 6), ["log_every"] = 10,
            },
        };
        try
        {
            foreach (var o in overrides) ClipSharp.Training.TrainConfig.ApplyOverride(config, o, "clip demo --set");
            ClipSharp.Training.TrainConfig.FromNode((JsonObject)config.DeepClone(), null, "clip demo --set");
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or ClipSharpException)
        {
            throw new CliException(e.Message);
        }
        var configText = config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
        bool sameConfig = File.Exists(configPath) && File.ReadAllText(configPath) == configText;
        if (File.Exists(final) && sameConfig && !retrain)
        {
            Console.Error.WriteLine($"using the finished run in {runDir} (--retrain to train again)");
        }
        else
        {
            bool resume = sameConfig && !retrain && Directory.Exists(Path.Combine(runDir, "checkpoints")) &&
                          Directory.EnumerateFiles(Path.Combine(runDir, "checkpoints"), "*.safetensors").Any();
            if (!sameConfig || retrain)
            {
                foreach (var stale in new[] { "checkpoints", "plots" }) if (Directory.Exists(Path.Combine(runDir, stale))) Directory.Delete(Path.Combine(runDir, stale), true);
                foreach (var f in new[] { final, Path.Combine(runDir, "best.safetensors"), Path.Combine(runDir, "metrics.jsonl") }) File.Delete(f);
            }
            ClipSharp.Training.AtomicFile.WriteAllText(configPath, configText);
            if (resume) Console.Error.WriteLine("resuming the interrupted run from its last checkpoint");
            Invoke(resume ? ["train", "--config", configPath, "--resume", "latest"] : ["train", "--config", configPath]);
        }
        Invoke("plot", runDir);

        Stage("4/5 zero-shot evaluation");
        var evalDir = Path.Combine(runDir, "eval");
        var rows = new List<(string Split, string What, int Classes, JsonNode Result)>();
        void Evaluate(string split, string what, params string[] templates)
        {
            var outDir = Path.Combine(evalDir, split);
            var args = new List<string>
            {
                "eval", "zeroshot", "--model", final, "--vocab", vocabPath, "--data", Path.Combine(corpusDir, split + ".csv"),
                "--classnames", Path.Combine(corpusDir, split + "-classes.txt"), "--output", outDir, "--label-column", "label", "--quiet",
            };
            foreach (var t in templates) args.AddRange(["--templates", t]);
            Invoke([.. args]);
            var json = JsonNode.Parse(File.ReadAllText(Directory.EnumerateFiles(outDir, "*.json").First()))!;
            rows.Add((split, what, json["result"]!["classes"]!.GetValue<int>(), json["result"]!));
        }
        Evaluate("zeroshot", "emoji subgroups never seen in training", "an emoji of {}.", "{}");
        Evaluate("shift", "trained emoji drawn by unseen artists", "an emoji of {}.", "{}");
        Evaluate("fashion-mnist", "Fashion-MNIST (a domain never seen)", "a {}.", "a drawing of a {}.", "a picture of a {}.");

        var report = Report(rows, runDir, clock.Elapsed);
        ClipSharp.Training.AtomicFile.WriteAllText(Path.Combine(runDir, "report.md"), report);
        Console.WriteLine();
        Console.WriteLine(report);

        Stage("5/5 search index");
        var serve = DemoSearchIndex.Build(corpusDir, final, vocabPath, Invoke);
        Console.WriteLine();
        Console.WriteLine("Search the corpus with the demo model in a browser:");
        Console.WriteLine($"  {serve}");
        return 0;
    }

    /// <summary>Wilson score interval for a binomial proportion (95 %).</summary>
    internal static (double Low, double High) Wilson(double p, int n, double z = 1.959964)
    {
        if (n == 0) return (double.NaN, double.NaN);
        double denom = 1 + z * z / n;
        double centre = (p + z * z / (2 * n)) / denom;
        double half = z * Math.Sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / denom;
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }

    static string Report(List<(string Split, string What, int Classes, JsonNode Result)> rows, string runDir, TimeSpan elapsed)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# ClipSharp demo: zero-shot transfer of a CLIP trained from scratch");
        sb.AppendLine();
        sb.AppendLine(inv, $"Run folder `{runDir}`; learning curves in `plots/`; per-class reports and confusion matrices in `eval/`. Total time {elapsed:hh\\:mm\\:ss}.");
        sb.AppendLine();
        sb.AppendLine("| split | what | classes | images | top-1 | 95% CI | top-5 | chance (top-1) | top-1 / chance |");
        sb.AppendLine("|---|---|---:|---:|---:|---|---:|---:|---:|");
        foreach (var (split, what, classes, result) in rows)
        {
            var m = result["metrics"]!;
            double top1 = m["top1"]!.GetValue<double>(), top5 = m["top5"]!.GetValue<double>();
            int n = m["count"]!.GetValue<int>();
            var (lo, hi) = Wilson(top1, n);
            double chance = 1.0 / classes;
            sb.AppendLine(inv, $"| {split} | {what} | {classes} | {n} | {100 * top1:F1}% | {100 * lo:F1}–{100 * hi:F1}% | {100 * top5:F1}% | {100 * chance:F2}% | {top1 / chance:F1}× |");
        }
        sb.AppendLine();
        sb.AppendLine("Zero-shot: class names turned into captions with prompt templates, embedded by the text tower, and matched to the");
        sb.AppendLine("image embeddings; no labelled example of any evaluated class was used. Chance is 1/classes.");
        return sb.ToString();
    }
}
