using System.CommandLine;
using System.Globalization;
using ClipSharp.Data.Readers;
using ClipSharp.Evaluation;
using ClipSharp.Modeling;
using ClipSharp.Text;
using ClipSharp.ZeroShot;
using Spectre.Console;

namespace ClipSharp.Cli.Commands;

/// <summary>Options shared by <c>clip eval …</c> and <c>clip predict</c>, and the code that turns them into an <see cref="Evaluator"/>.</summary>
internal sealed class EvalCommon
{
    public readonly Option<string> Model = Common.ModelOption();
    public readonly Option<string?> Config = Common.ConfigOption();
    public readonly Option<string?> Vocab = Common.VocabOption();
    public readonly Option<string> Output = new("--output", "-o") { Description = "Directory for the JSON and Markdown reports (and plots)", DefaultValueFactory = _ => "eval-results" };
    public readonly Option<int> BatchSize = new("--batch-size") { Description = "Images per forward pass", DefaultValueFactory = _ => 64 };
    public readonly Option<int> Workers = new("--workers") { Description = "Threads decoding and preprocessing images in parallel with the model", DefaultValueFactory = _ => Environment.ProcessorCount };
    public readonly Option<string?> CacheDir = new("--cache-dir") { Description = "Feature cache directory (default: $CLIPSHARP_CACHE/features or ~/.cache/clipsharp/features)" };
    public readonly Option<bool> NoCache = new("--no-cache") { Description = "Do not read or write cached image features" };
    public readonly Option<bool> HashCheckpoint = new("--hash-checkpoint") { Description = "Identify the checkpoint in the cache by a SHA-256 of its bytes (default: path, size and modification time)" };
    public readonly Option<bool> Bf16 = new("--bf16") { Description = "Run the matrix products in bfloat16 (faster on CPUs with bf16 support; features differ slightly)" };
    public readonly Option<bool> Quiet = new("--quiet", "-q") { Description = "No progress bar or status lines" };
    public readonly Option<string?> ImageColumn = new("--image-column") { Description = "CSV/TSV column with image paths (default: image, filepath, path, file, filename)" };
    public readonly Option<string?> LabelColumn = new("--label-column") { Description = "CSV/TSV column (or WebDataset json field) with labels (default: label, class, category)" };
    public readonly Option<string?> CaptionColumn = new("--caption-column") { Description = "CSV/TSV column with captions (default: caption, text, title)" };

    public void AddTo(Command cmd, bool columns = true)
    {
        foreach (var o in new Option[] { Model, Config, Vocab, Output, BatchSize, Workers, CacheDir, NoCache, HashCheckpoint, Bf16, Quiet })
            cmd.Options.Add(o);
        if (columns) foreach (var o in new Option[] { ImageColumn, LabelColumn, CaptionColumn }) cmd.Options.Add(o);
    }

    public static Option<string?> ClassNamesOption() => new("--classnames")
    {
        Description = $"Class names: a file with one per line or a shipped list ({string.Join(", ", PromptSets.ClassNameSetNames)}); default: the dataset's own (folder names)",
    };

    public static Option<string[]> TemplatesOption() => new("--templates")
    {
        Description = $"Prompt templates: shipped sets ({string.Join(", ", PromptSets.TemplateSetNames)}), files (one per line) or inline templates with {{}}; repeatable. Default: the --classnames dataset's set if shipped, else imagenet (80)",
        AllowMultipleArgumentsPerToken = true,
    };

    public static Option<string> ScaleOption() => new("--logit-scale")
    {
        Description = "Zero-shot logit multiplier: a number (default 100, as in the paper) or 'model' for the checkpoint's exp(logit_scale)",
        DefaultValueFactory = _ => "100",
    };

    public TableColumns Columns(ParseResult r, IReadOnlyList<string>? classNames = null) => new()
    {
        ImageColumn = r.GetValue(ImageColumn),
        LabelColumn = r.GetValue(LabelColumn),
        CaptionColumn = r.GetValue(CaptionColumn),
        ClassNames = classNames,
    };

    public static IReadOnlyList<string>? ClassNames(ParseResult r, Option<string?> option)
    {
        var spec = r.GetValue(option);
        if (spec is null) return null;
        try { return PromptSets.ResolveClassNames(spec); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    public static IReadOnlyList<string> Templates(ParseResult r, Option<string[]> option, Option<string?> classNames)
    {
        var specs = r.GetValue(option) ?? [];
        var cn = r.GetValue(classNames);
        if (specs.Length == 0 && cn is not null && !File.Exists(cn) && PromptSets.IsTemplateSet(cn)) specs = [cn];
        try { return PromptSets.ResolveTemplates(specs); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    public static ZeroShotOptions ScaleSettings(ParseResult r, Option<string> option)
    {
        var s = r.GetValue(option) ?? "100";
        if (s.Equals("model", StringComparison.OrdinalIgnoreCase)) return new ZeroShotOptions { UseModelLogitScale = true };
        if (float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0) return new ZeroShotOptions { Scale = v };
        throw new CliException($"--logit-scale must be a positive number or 'model', got '{s}'");
    }

    public static ILabeledImageDataset OpenLabeled(string path, TableColumns columns)
    {
        if (!File.Exists(path) && !Directory.Exists(path) && !path.Contains('{') && !path.Contains('*'))
            throw new CliException($"dataset not found: {path}");
        var ds = DatasetFiles.OpenLabeled(path, columns);
        if (ds is CsvDataset csv && csv.LabelColumn is null) throw new CliException($"{path}: no label column; name it with --label-column");
        return ds;
    }

    public static IReadOnlyList<int> IntList(string text, string what)
    {
        try
        {
            var list = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture)).ToList();
            if (list.Count == 0 || list.Any(v => v < 1)) throw new FormatException();
            return list;
        }
        catch (FormatException) { throw new CliException($"{what} must be a comma-separated list of positive integers, got '{text}'"); }
        catch (OverflowException) { throw new CliException($"{what} must be a comma-separated list of positive integers, got '{text}'"); }
    }

    /// <summary>Loads model and tokenizer and runs <paramref name="work"/> with an evaluator, under a progress display.</summary>
    public int Run(ParseResult r, ZeroShotOptions zeroShot, Func<Evaluator, string, int> work)
    {
        string modelPath = r.GetValue(Model)!;
        bool quiet = r.GetValue(Quiet);
        int batch = r.GetValue(BatchSize), workers = r.GetValue(Workers);
        if (batch < 1) throw new CliException("--batch-size must be at least 1");
        if (workers < 1) throw new CliException("--workers must be at least 1");
        using var model = Common.LoadModel(modelPath, r.GetValue(Config));
        if (r.GetValue(Bf16)) model.UseBFloat16Weights();
        // The vocabulary is checked against the model here, before any image is encoded.
        var tokenizer = Common.LoadTokenizer(model, r.GetValue(Vocab));
        string? cacheDir = r.GetValue(NoCache) ? null : r.GetValue(CacheDir) ?? DefaultCacheDir();
        var outDir = r.GetValue(Output)!; // created by the report writers, so `clip predict` leaves no empty folder
        Status = quiet ? _ => { } : line => Console.Error.WriteLine(line);
        void Log(string line) => Status(line);

        bool live = !quiet && !Console.IsErrorRedirected;
        _live = live;
        _results.Clear();
        if (!live)
        {
            var progress = quiet ? null : new PlainProgress();
            var ev = new Evaluator(model, tokenizer, Settings(modelPath, cacheDir, batch, workers, zeroShot, progress, Log, r));
            return work(ev, outDir);
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        int code = 0;
        Status = line => console.WriteLine(line); // printed above the live progress bar instead of through it
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var ev = new Evaluator(model, tokenizer, Settings(modelPath, cacheDir, batch, workers, zeroShot, new LiveProgress(ctx), Log, r));
                code = work(ev, outDir);
            });
        foreach (var line in _results) Console.WriteLine(line);
        _results.Clear();
        return code;
    }

    EvaluatorOptions Settings(string modelPath, string? cacheDir, int batch, int workers, ZeroShotOptions zs, IProgress<ExtractionProgress>? progress, Action<string> log, ParseResult r) => new()
    {
        CheckpointPath = modelPath,
        CacheDirectory = cacheDir,
        HashCheckpoint = r.GetValue(HashCheckpoint),
        Extraction = new FeatureExtractionOptions { BatchSize = batch, DecodeThreads = workers, Progress = progress },
        ZeroShot = zs,
        Log = log,
    };

    static string DefaultCacheDir()
    {
        var env = Environment.GetEnvironmentVariable("CLIPSHARP_CACHE");
        if (!string.IsNullOrEmpty(env)) return Path.Combine(env, "features");
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "clipsharp", "features");
    }

    /// <summary>Writes the Markdown report and tells the user where both reports are.</summary>
    public static void Done(string outDir, string stem, string markdown, bool quiet)
    {
        var md = Path.Combine(outDir, stem + ".md");
        File.WriteAllText(md, markdown);
        if (!quiet) Status($"wrote {Path.Combine(outDir, stem + ".json")} and {md}");
    }

    public bool IsQuiet(ParseResult r) => r.GetValue(Quiet);

    static readonly List<string> _results = [];
    static bool _live;

    /// <summary>Prints a result line on stdout — after the live progress display has finished, so the two do not interleave.</summary>
    public static void Result(string line)
    {
        if (_live) _results.Add(line);
        else Console.WriteLine(line);
    }

    /// <summary>Where status lines go: stderr, or above the live progress display while it runs.</summary>
    public static Action<string> Status { get; private set; } = line => Console.Error.WriteLine(line);

    /// <summary>A Spectre.Console task per feature extraction: images/s in the description, ETA in its own column.</summary>
    sealed class LiveProgress(ProgressContext ctx) : IProgress<ExtractionProgress>
    {
        ProgressTask? _task;
        public void Report(ExtractionProgress p)
        {
            if (_task is null || _task.IsFinished) _task = ctx.AddTask("encoding images", maxValue: p.Total ?? 1);
            _task.MaxValue = Math.Max(p.Total ?? p.Done + p.Skipped, 1);
            _task.Value = p.Done + p.Skipped;
            _task.Description = string.Create(CultureInfo.InvariantCulture, $"encoding images [grey]{p.ImagesPerSecond:0.0} img/s, {p.Skipped} skipped[/]");
            if (p.Total is int t && p.Done + p.Skipped >= t) _task.StopTask();
        }
    }

    /// <summary>Progress lines on stderr when it is not a terminal: about every 10 %, with images/s and ETA.</summary>
    internal sealed class PlainProgress : IProgress<ExtractionProgress>
    {
        int _lastDecile = -1;
        public void Report(ExtractionProgress p)
        {
            int done = p.Done + p.Skipped;
            int decile = p.Total is int t && t > 0 ? done * 10 / t : -1;
            if (decile == _lastDecile && decile >= 0) return;
            _lastDecile = decile;
            var eta = p.Eta is TimeSpan e ? $", ETA {e:hh\\:mm\\:ss}" : "";
            // Encoded and skipped apart: "5/5" when 3 of the 5 failed to decode told the user nothing was wrong.
            var skipped = p.Skipped > 0 ? string.Create(CultureInfo.InvariantCulture, $", {p.Skipped} skipped") : "";
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"encoded {p.Done}/{p.Total?.ToString(CultureInfo.InvariantCulture) ?? "?"} images{skipped} ({p.ImagesPerSecond:0.0} img/s{eta})"));
        }
    }
}
