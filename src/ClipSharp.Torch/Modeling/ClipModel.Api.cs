using ClipSharp.Checkpoints;
using ClipSharp.Imaging;
using ClipSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Modeling;

public sealed partial class ClipModel
{
    /// <summary>Metadata key under which <see cref="Save"/> stores the model's <see cref="ClipConfig"/> JSON.</summary>
    public const string ConfigMetadataKey = "clipsharp.config";

    /// <summary>
    /// Loads a checkpoint in any supported format (safetensors, PyTorch zip, OpenAI TorchScript, Hugging Face
    /// CLIPModel) and returns the model in eval mode, float32. The architecture comes from <see cref="ResolveConfig"/>.
    /// </summary>
    public static ClipModel Load(string path, string? configPath = null)
    {
        using var checkpoint = CheckpointLoader.Load(path);
        var (config, source) = ResolveConfig(checkpoint, configPath);
        if (ConfigFit.FirstMismatch(config, checkpoint.State.Shapes()) is { } mismatch)
            throw new ClipSharpException($"{ConfigFit.Describe(source)} does not fit the weights of {path}: {mismatch}");
        var model = new ClipModel(config, initialize: false);
        try
        {
            model.LoadWeights(checkpoint.State, path);
            if (PreprocessingConfig.Find(path, checkpoint.Metadata) is { } declared)
                model.Normalisation = declared;
            model.Vocabulary = VocabularyRecord.FromMetadata(checkpoint.Metadata, path);
            model.CheckpointPath = path;
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }

    /// <summary>
    /// The architecture of a loaded checkpoint and where it came from, in this order: <paramref name="configPath"/>
    /// (ClipSharp/reference JSON or an OpenCLIP model config); a config stored in the checkpoint (ClipSharp metadata or a
    /// Hugging Face config.json); a sibling config file (<see cref="SiblingConfigPath"/>); inference from the tensor
    /// shapes as the reference <c>build_model</c> does (64-wide attention heads, QuickGELU).
    /// </summary>
    public static (ClipConfig Config, string Source) ResolveConfig(LoadedCheckpoint checkpoint, string? configPath)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (configPath is not null) return (ClipConfig.FromJsonFile(configPath), configPath);
        if (checkpoint.Metadata.TryGetValue(ConfigMetadataKey, out var json)) return (ClipConfig.FromJson(json, checkpoint.Path + " metadata"), "checkpoint metadata");
        if (checkpoint.Config is not null) return (checkpoint.Config, "Hugging Face config.json");
        var sibling = SiblingConfigPath(checkpoint.Path);
        if (sibling is not null) return (ClipConfig.FromJsonFile(sibling), sibling);
        return (ArchitectureInference.Infer(checkpoint.State), "inferred from tensor shapes (reference build_model rules)");
    }

    /// <summary>
    /// A config file beside a checkpoint, if one exists: <c>NAME.config.json</c> next to <c>NAME.ext</c> (or
    /// <c>NAME.jit.pt</c>), else OpenCLIP's <c>open_clip_config.json</c> in the same folder when the weights have the
    /// hub's names (<c>open_clip_pytorch_model.bin</c>, <c>open_clip_model.safetensors</c>): another checkpoint that
    /// happens to share the folder, say OpenAI's ViT-B-32.pt beside a LAION ViT-B-32, must not take its settings.
    /// </summary>
    public static string? SiblingConfigPath(string checkpointPath)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(checkpointPath))!;
        var stem = Path.GetFileNameWithoutExtension(checkpointPath);
        foreach (var candidate in new[] { stem, Path.GetFileNameWithoutExtension(stem) })
        {
            var p = Path.Combine(dir, candidate + ".config.json");
            if (File.Exists(p)) return p;
        }
        var openClip = Path.Combine(dir, OpenClipConfig.HubConfigFileName);
        return OpenClipConfig.IsHubWeightsName(checkpointPath) && File.Exists(openClip) ? openClip : null;
    }

    /// <summary>
    /// The weights in the OpenAI/OpenCLIP layout (keys as the reference state_dict). The tensors share storage
    /// with the model; disposing the returned dictionary does not affect the model.
    /// </summary>
    public StateDict ExportStateDict()
    {
        var sd = new StateDict();
        foreach (var (key, tensor) in state_dict()) sd.Add(key, tensor.detach());
        return sd;
    }

    /// <summary>Saves the weights as safetensors in the OpenAI/OpenCLIP layout, with the config in the metadata.
    /// The file is written to a temporary name and renamed, so an interrupted save never leaves a partial file.</summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var sd = ExportStateDict();
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>())
        {
            [ConfigMetadataKey] = Config.ToJson(),
            ["format"] = "pt",
        };
        if (Normalisation != (ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd))
            meta[PreprocessingConfig.MetadataKey] = PreprocessingConfig.ToMetadata(Normalisation.Mean, Normalisation.Std);
        if (Vocabulary is not null) meta[VocabularyRecord.MetadataKey] = Vocabulary.ToJson();
        SafeTensors.Save(path, sd, meta);
    }

    /// <summary>The checkpoint <see cref="Load"/> read this model from (null for a model built in memory).</summary>
    public string? CheckpointPath { get; private set; }

    /// <summary>
    /// The vocabulary the model's token embedding belongs to, as its checkpoint declares it (checkpoints ClipSharp
    /// writes; null for others). <see cref="Save"/> records it, <see cref="LoadTokenizer"/> finds it.
    /// </summary>
    public VocabularyRecord? Vocabulary { get; set; }

    /// <summary>
    /// The model's tokenizer: <paramref name="vocabularyPath"/> if given, else the vocabulary its checkpoint declares or
    /// keeps beside it, else the defaults of <see cref="VocabularyLocator"/> (ending with the built-in OpenAI vocabulary);
    /// then checked against the model with <see cref="CheckVocabulary"/>.
    /// </summary>
    /// <exception cref="VocabularyMismatchException">The vocabulary's size differs from the model's <c>vocab_size</c>.</exception>
    /// <exception cref="FileNotFoundException">The given or declared vocabulary cannot be found.</exception>
    public ClipTokenizer LoadTokenizer(string? vocabularyPath = null)
    {
        var tokenizer = VocabularyLocator.Load(vocabularyPath, CheckpointPath, Vocabulary);
        CheckVocabulary(tokenizer);
        return tokenizer;
    }

    /// <summary>
    /// Refuses a tokenizer whose vocabulary size differs from the model's <c>vocab_size</c>: larger, its ids would index
    /// past the token embedding; smaller, its ids would stand for other tokens than the model learned. Cheap; the text
    /// entry points call it before any work.
    /// </summary>
    /// <exception cref="VocabularyMismatchException">The sizes differ; the message names both and the vocabulary.</exception>
    public void CheckVocabulary(ClipTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.VocabSize != Config.VocabSize) throw new VocabularyMismatchException(CheckpointPath, Config.VocabSize, tokenizer);
    }

    /// <summary>
    /// The per-channel mean and std images are normalised with: CLIP's, unless the checkpoint declared others
    /// (see <see cref="PreprocessingConfig"/>); <see cref="Save"/> keeps non-default values in the file.
    /// </summary>
    public ((float R, float G, float B) Mean, (float R, float G, float B) Std) Normalisation { get; set; } =
        (ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd);

    /// <summary>A preprocessor for this model: its input resolution and <see cref="Normalisation"/>.</summary>
    public ClipImagePreprocessor CreatePreprocessor() =>
        new(new ClipImagePreprocessorOptions { Size = visual.InputResolution, Mean = Normalisation.Mean, Std = Normalisation.Std });

    /// <summary>
    /// Embeds image files: decodes and preprocesses each batch in parallel, runs the image tower without
    /// autograd, and returns float32 features [N, embed_dim] (unnormalised, like the reference encode_image).
    /// A file that cannot be decoded throws <see cref="ImageDecodeException"/> naming it.
    /// </summary>
    public Tensor EncodeImages(IReadOnlyList<string> imagePaths, int batchSize = 32, ClipImagePreprocessor? preprocessor = null)
    {
        preprocessor ??= CreatePreprocessor();
        var parts = new List<Tensor>();
        using var scope = NewDisposeScope();
        using var _ = torch.inference_mode();
        for (int start = 0; start < imagePaths.Count; start += batchSize)
        {
            var batch = imagePaths.Skip(start).Take(batchSize).ToList();
            using var inner = NewDisposeScope();
            var pixels = preprocessor.ProcessBatch(batch);
            parts.Add(EncodeImage(pixels).MoveToOuterDisposeScope());
        }
        var result = parts.Count == 0 ? torch.empty(0, Config.EmbedDim) : torch.cat(parts, 0);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Embeds texts: tokenizes (truncating over-long texts by default, as the reference clip.tokenize(truncate=True)),
    /// runs the text tower without autograd, and returns float32 features [N, embed_dim] (unnormalised).
    /// </summary>
    /// <exception cref="VocabularyMismatchException">The tokenizer's vocabulary does not fit the model (<see cref="CheckVocabulary"/>).</exception>
    public Tensor EncodeTexts(IReadOnlyList<string> texts, ClipTokenizer tokenizer, bool truncate = true, int batchSize = 256)
    {
        CheckVocabulary(tokenizer);
        var parts = new List<Tensor>();
        using var scope = NewDisposeScope();
        using var _ = torch.inference_mode();
        for (int start = 0; start < texts.Count; start += batchSize)
        {
            var batch = texts.Skip(start).Take(batchSize).ToList();
            using var inner = NewDisposeScope();
            var ids = tokenizer.ToTensor(batch, Config.ContextLength, truncate);
            parts.Add(EncodeText(ids).MoveToOuterDisposeScope());
        }
        var result = parts.Count == 0 ? torch.empty(0, Config.EmbedDim) : torch.cat(parts, 0);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Softmax over texts of the scaled similarities, one row per image (the reference README example).</summary>
    public float[,] Probabilities(Tensor imageFeatures, Tensor textFeatures)
    {
        using var scope = NewDisposeScope();
        using var _ = torch.inference_mode();
        var (perImage, _) = Logits(imageFeatures, textFeatures);
        var probs = perImage.softmax(-1);
        var result = new float[probs.shape[0], probs.shape[1]];
        var flat = probs.contiguous().data<float>().ToArray();
        Buffer.BlockCopy(flat, 0, result, 0, flat.Length * sizeof(float));
        return result;
    }

    /// <summary>This model behind the backend-neutral <see cref="IClipEncoder"/> (arrays in, features out); the model is not disposed with it.</summary>
    public TorchClipEncoder AsEncoder() => new(this);

    /// <summary>Parameter counts per tower, for reports.</summary>
    public (long Total, long Visual, long Text) ParameterCounts()
    {
        long total = 0, vis = 0;
        foreach (var (name, p) in named_parameters())
        {
            total += p.numel();
            if (name.StartsWith("visual.", StringComparison.Ordinal)) vis += p.numel();
        }
        return (total, vis, total - vis - 1);
    }
}
