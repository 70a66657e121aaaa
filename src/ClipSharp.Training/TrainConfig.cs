using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using ClipSharp.Modeling;

namespace ClipSharp.Training;

/// <summary>
/// Everything a training run needs, read from one JSON (or YAML) file with snake_case keys and optional
/// <c>key.path=value</c> overrides. The resolved form is written next to the run's checkpoints.
/// </summary>
public sealed record TrainConfig
{
    /// <summary>The model to train.</summary>
    public ModelSection Model { get; init; } = new();

    /// <summary>Training and validation data.</summary>
    public DataSection Data { get; init; } = new();

    /// <summary>AdamW settings and gradient clipping.</summary>
    public OptimizerSection Optimizer { get; init; } = new();

    /// <summary>Steps, warm-up and the cosine decay.</summary>
    public ScheduleSection Schedule { get; init; } = new();

    /// <summary>Objective: symmetric InfoNCE or SigLIP's sigmoid loss.</summary>
    public LossSection Loss { get; init; } = new();

    /// <summary>Which parts of the model are trained.</summary>
    public FreezeSection Freeze { get; init; } = new();

    /// <summary>Run directory, checkpoints, logging and evaluation cadence.</summary>
    public OutputSection Output { get; init; } = new();

    /// <summary>Data-parallel settings (used when the run is started by an MPI launcher with several processes).</summary>
    public DistributedSection Distributed { get; init; } = new();

    /// <summary>Seed of the model initialisation, data order and augmentation.</summary>
    public int Seed { get; init; }

    /// <summary>Serializer settings for the file format (snake_case, unknown keys rejected, comments allowed).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Parses a config from JSON text, applying <paramref name="overrides"/> ("a.b=value") first.</summary>
    /// <param name="text">JSON (comments and trailing commas allowed).</param>
    /// <param name="overrides">Dotted-path assignments; the value is parsed as JSON when it is valid JSON, else taken as a string.</param>
    /// <param name="source">Name used in error messages.</param>
    public static TrainConfig FromJson(string text, IEnumerable<string>? overrides = null, string source = "config")
    {
        JsonNode? root;
        try { root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new ClipSharpException($"{source}: not valid JSON ({e.Message})", e); }
        return FromNode(root as JsonObject ?? throw new ClipSharpException($"{source}: expected a JSON object"), overrides, source);
    }

    /// <summary>Loads a config file (.json, or .yaml/.yml) and applies overrides.</summary>
    public static TrainConfig Load(string path, IEnumerable<string>? overrides = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file not found: {path}", path);
        var text = File.ReadAllText(path);
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".yaml" or ".yml") return FromNode(YamlConfig.ToJson(text, path), overrides, path);
        return FromJson(text, overrides, path);
    }

    /// <summary>Builds a config from a JSON object, applying overrides, and validates it.</summary>
    public static TrainConfig FromNode(JsonObject root, IEnumerable<string>? overrides, string source)
    {
        foreach (var o in overrides ?? []) ApplyOverride(root, o, source);
        TrainConfig? cfg;
        try { cfg = root.Deserialize<TrainConfig>(JsonOptions); }
        catch (JsonException e) { throw new ClipSharpException($"{source}: {e.Message}", e); }
        if (cfg is null) throw new ClipSharpException($"{source}: empty config");
        cfg.Validate(source);
        return cfg;
    }

    /// <summary>Sets one dotted path (e.g. <c>optimizer.lr=1e-4</c>, <c>data.train.0.weight=2</c>) in a JSON tree.</summary>
    public static void ApplyOverride(JsonObject root, string assignment, string source = "override")
    {
        int eq = assignment.IndexOf('=');
        if (eq <= 0) throw new ArgumentException($"{source}: override '{assignment}' is not key=value");
        string[] path = assignment[..eq].Trim().Split('.');
        string raw = assignment[(eq + 1)..];
        JsonNode? value;
        try { value = JsonNode.Parse(raw); }
        catch (JsonException) { value = JsonValue.Create(raw); }
        JsonNode node = root;
        for (int i = 0; i < path.Length; i++)
        {
            string key = path[i];
            bool last = i == path.Length - 1;
            if (node is JsonArray arr && int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out int idx))
            {
                if (idx >= arr.Count) throw new ArgumentException($"{source}: index {idx} out of range in '{assignment}'");
                if (last) { arr[idx] = value; return; }
                node = arr[idx] ??= new JsonObject();
            }
            else if (node is JsonObject obj)
            {
                if (last) { obj[key] = value; return; }
                if (obj[key] is not (JsonObject or JsonArray)) obj[key] = new JsonObject();
                node = obj[key]!;
            }
            else throw new ArgumentException($"{source}: cannot set '{assignment}': '{key}' is not inside an object");
        }
    }

    /// <summary>The config as indented JSON (the resolved form written into the run directory).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Checks ranges and combinations; throws <see cref="ClipSharpException"/> naming the problem.</summary>
    public void Validate(string source = "config")
    {
        void Check(bool ok, string what) { if (!ok) throw new ClipSharpException($"{source}: {what}"); }
        Check(Model.Name is not null || Model.Config is not null || Model.InitFrom is not null, "model needs a name, an inline config or init_from");
        Check(Data.BatchSize > 0, "data.batch_size must be positive");
        Check(Data.MicroBatchSize is null || (Data.MicroBatchSize > 0 && Data.BatchSize % Data.MicroBatchSize == 0),
            "data.micro_batch_size must divide data.batch_size");
        Check(Schedule.Steps > 0, "schedule.steps must be positive");
        Check(Schedule.WarmupSteps >= 0, "schedule.warmup_steps must be ≥ 0");
        Check(Optimizer.Lr > 0, "optimizer.lr must be positive");
        Check(Optimizer.WeightDecay >= 0, "optimizer.weight_decay must be ≥ 0");
        Check(Data.Augment.ScaleMin > 0 && Data.Augment.ScaleMin <= Data.Augment.ScaleMax && Data.Augment.ScaleMax <= 1,
            "data.augment scale must satisfy 0 < scale_min ≤ scale_max ≤ 1");
        Check(Output.KeepLast >= 1, "output.keep_last must be ≥ 1");
        Check(!(Freeze.LockImage && Freeze.LockText), "locking both towers leaves nothing but the temperature to train");
        foreach (var s in Data.Train) Check(s.Weight > 0, $"data source {s.Path}: weight must be positive");
        Check(Distributed.BucketMb > 0 && Distributed.BucketMb <= 2048, "distributed.bucket_mb must be in (0, 2048]");
    }
}

/// <summary>Which model to build and how to initialise it.</summary>
public sealed record ModelSection
{
    /// <summary>A named architecture (see <see cref="ModelPresets"/>), e.g. "cpu-vit-tiny" or "ViT-B/32".</summary>
    public string? Name { get; init; }

    /// <summary>An inline <see cref="ClipConfig"/> in the reference key names (overrides <see cref="Name"/>).</summary>
    public JsonObject? Config { get; init; }

    /// <summary>Start from this checkpoint's weights (fine-tuning). Its architecture is used when no name/config is given.</summary>
    public string? InitFrom { get; init; }

    /// <summary>Recompute transformer activations in the backward pass instead of storing them.</summary>
    public bool GradCheckpointing { get; init; }

    /// <summary>Training arithmetic: "fp32", or "bf16" (bfloat16 matrix products with float32 master weights, optimiser state, norms and loss; ViT only).</summary>
    public TrainPrecision Precision { get; init; } = TrainPrecision.Fp32;

    /// <summary>Resolves the architecture (inline config, then name).</summary>
    public ClipConfig? Resolve()
    {
        if (Config is not null) return ClipConfig.FromJson(Config.ToJsonString(), "model.config");
        if (Name is not null) return ModelPresets.Get(Name);
        return null;
    }
}

/// <summary>Kinds of training data source.</summary>
public enum SourceKind
{
    /// <summary>Comma-separated file with a header row.</summary>
    Csv,
    /// <summary>Tab-separated file with a header row.</summary>
    Tsv,
    /// <summary>WebDataset tar shards (a file, a directory of .tar files, or a brace pattern).</summary>
    Webdataset,
    /// <summary>One folder per class; captions from templates.</summary>
    ImageFolder,
}

/// <summary>One source of image–caption pairs, mixed with the others by weight.</summary>
public sealed record SourceSection
{
    /// <summary>Format of the source.</summary>
    public SourceKind Type { get; init; } = SourceKind.Csv;

    /// <summary>File or directory (relative paths resolve against the config file's directory).</summary>
    public string Path { get; init; } = "";

    /// <summary>CSV/TSV column holding the image path, relative to the file's directory (null: image, filepath, path, file, filename or image_path).</summary>
    public string? ImageColumn { get; init; }

    /// <summary>CSV/TSV column holding the caption (null: caption, text, title or sentence).</summary>
    public string? CaptionColumn { get; init; }

    /// <summary>Relative sampling weight when several sources are mixed.</summary>
    public double Weight { get; init; } = 1.0;

    /// <summary>Caption templates for image folders ("{}" is replaced by the class name).</summary>
    public List<string>? Templates { get; init; }
}

/// <summary>Image augmentation for training (evaluation always resizes and centre-crops).</summary>
public sealed record AugmentSection
{
    /// <summary>Smallest crop area as a fraction of the image (RandomResizedCrop).</summary>
    public double ScaleMin { get; init; } = 0.9;

    /// <summary>Largest crop area fraction.</summary>
    public double ScaleMax { get; init; } = 1.0;

    /// <summary>Smallest crop aspect ratio (width/height).</summary>
    public double RatioMin { get; init; } = 3.0 / 4;

    /// <summary>Largest crop aspect ratio.</summary>
    public double RatioMax { get; init; } = 4.0 / 3;

    /// <summary>Flip horizontally with probability ½ (off by default: captions may say "left"/"right").</summary>
    public bool Hflip { get; init; }

    /// <summary>Strength of random brightness/contrast/saturation jitter (0 = off; 0.4 is a strong setting).</summary>
    public double ColorJitter { get; init; }

    /// <summary>Probability of converting the crop to greyscale.</summary>
    public double Grayscale { get; init; }
}

/// <summary>Training and validation data.</summary>
public sealed record DataSection
{
    /// <summary>Training sources, mixed by weight.</summary>
    public List<SourceSection> Train { get; init; } = [];

    /// <summary>Validation pairs for retrieval R@1 (optional).</summary>
    public SourceSection? Val { get; init; }

    /// <summary>At most this many validation pairs are used.</summary>
    public int ValLimit { get; init; } = 1000;

    /// <summary>Zero-shot evaluation on a class folder (optional).</summary>
    public ZeroShotSection? ZeroShot { get; init; }

    /// <summary>The BPE vocabulary: a .txt.gz file or a Hugging Face vocab.json (null: model.init_from's own vocabulary, else
    /// CLIPSHARP_BPE_VOCAB, ~/.cache/clipsharp, else OpenAI's built-in bpe_simple_vocab_16e6.txt.gz; see <see cref="Text.VocabularyLocator"/>).</summary>
    public string? Vocab { get; init; }

    /// <summary>The contrastive batch (global batch over which the loss is computed).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Forward/backward chunk; smaller than <see cref="BatchSize"/> enables feature-caching accumulation.</summary>
    public int? MicroBatchSize { get; init; }

    /// <summary>Decoding/augmentation threads (0: half the cores, at least 1).</summary>
    public int Workers { get; init; }

    /// <summary>Batches prepared ahead of training.</summary>
    public int Prefetch { get; init; } = 2;

    /// <summary>Augmentation.</summary>
    public AugmentSection Augment { get; init; } = new();
}

/// <summary>Zero-shot classification during validation.</summary>
public sealed record ZeroShotSection
{
    /// <summary>A folder with one sub-folder of images per class (the folder name is the class name, '_' read as space).</summary>
    public string Path { get; init; } = "";

    /// <summary>Prompt templates ("{}" is replaced by the class name).</summary>
    public List<string> Templates { get; init; } = ["a photo of a {}."];

    /// <summary>At most this many images per class.</summary>
    public int PerClassLimit { get; init; } = 50;
}

/// <summary>AdamW and gradient clipping. Null betas/eps take the architecture's default.</summary>
public sealed record OptimizerSection
{
    /// <summary>Peak learning rate.</summary>
    public double Lr { get; init; } = 5e-4;

    /// <summary>Decoupled weight decay on parameters with ≥ 2 dimensions.</summary>
    public double WeightDecay { get; init; } = 0.2;

    /// <summary>β₁ (default 0.9).</summary>
    public double? Beta1 { get; init; }

    /// <summary>β₂ (default 0.98 for ViT, 0.999 for ResNet).</summary>
    public double? Beta2 { get; init; }

    /// <summary>ε (default 1e-6 for ViT, 1e-8 for ResNet).</summary>
    public double? Eps { get; init; }

    /// <summary>Clip the global gradient norm to this value (null or ≤ 0: off).</summary>
    public double? GradClip { get; init; } = 1.0;
}

/// <summary>Learning-rate schedule: linear warm-up from 0, then cosine decay to <see cref="MinLr"/>.</summary>
public sealed record ScheduleSection
{
    /// <summary>Total optimiser steps.</summary>
    public int Steps { get; init; } = 1000;

    /// <summary>Warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 100;

    /// <summary>Final learning rate.</summary>
    public double MinLr { get; init; }
}

/// <summary>The objective.</summary>
public enum LossKind
{
    /// <summary>CLIP's symmetric InfoNCE.</summary>
    Infonce,
    /// <summary>SigLIP's pairwise sigmoid loss with a learnable bias.</summary>
    Sigmoid,
}

/// <summary>Loss settings.</summary>
public sealed record LossSection
{
    /// <summary>Which loss.</summary>
    public LossKind Type { get; init; } = LossKind.Infonce;

    /// <summary>Initial ln(scale) for a fresh model (null: ln(1/0.07) for InfoNCE, ln 10 for sigmoid).</summary>
    public double? InitLogitScale { get; init; }

    /// <summary>Initial logit bias for the sigmoid loss.</summary>
    public double InitLogitBias { get; init; } = -10;

    /// <summary>Upper clamp of ln(scale) after each step (ln 100).</summary>
    public double MaxLogitScale { get; init; } = Math.Log(100);
}

/// <summary>Freezing for fine-tuning.</summary>
public sealed record FreezeSection
{
    /// <summary>Lock the whole image tower (LiT).</summary>
    public bool LockImage { get; init; }

    /// <summary>Lock the whole text tower (embeddings, transformer, final LayerNorm, projection).</summary>
    public bool LockText { get; init; }

    /// <summary>Freeze the image tower's stem/embeddings and its first N transformer blocks (ViT).</summary>
    public int FreezeImageLayers { get; init; }

    /// <summary>Freeze the token/positional embeddings and the first N text blocks.</summary>
    public int FreezeTextLayers { get; init; }

    /// <summary>Keep logit_scale fixed.</summary>
    public bool LockLogitScale { get; init; }
}

/// <summary>Run directory, checkpoints, logging and evaluation cadence.</summary>
public sealed record OutputSection
{
    /// <summary>Run directory (checkpoints, metrics, resolved config, final weights).</summary>
    public string Dir { get; init; } = "runs/clip";

    /// <summary>Write a checkpoint every N steps (0: only at the end).</summary>
    public int CheckpointEvery { get; init; } = 500;

    /// <summary>Keep the newest N periodic checkpoints.</summary>
    public int KeepLast { get; init; } = 3;

    /// <summary>Validate every N steps (0: only at the end).</summary>
    public int EvalEvery { get; init; } = 500;

    /// <summary>Log metrics every N steps.</summary>
    public int LogEvery { get; init; } = 10;

    /// <summary>Also write TensorBoard event files.</summary>
    public bool Tensorboard { get; init; } = true;

    /// <summary>Validation metric that selects best.safetensors ("val/i2t_r1", "val/t2i_r1", "val/zeroshot_top1", "val/loss").</summary>
    public string BestMetric { get; init; } = "val/i2t_r1";
}

/// <summary>Data-parallel training over MPI (see <c>docs/training.md</c>).</summary>
public sealed record DistributedSection
{
    /// <summary>Gradients are summed over ranks in all-reduces of at most this many MiB (PyTorch DDP's default 25).</summary>
    public double BucketMb { get; init; } = 25;

    /// <summary>
    /// Start each bucket's all-reduce as soon as the backward pass has produced its gradients, on a communication
    /// thread, instead of after the whole backward pass.
    /// </summary>
    public bool Overlap { get; init; }

    /// <summary>
    /// open_clip's <c>local_loss</c>: each rank computes only its n × N rows of the logits against the gathered
    /// features, and the gradients of the other ranks' features are sent back to them. Same result, less memory.
    /// </summary>
    public bool LocalLoss { get; init; }
}
