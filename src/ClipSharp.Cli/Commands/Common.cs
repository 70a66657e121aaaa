using System.CommandLine;
using ClipSharp.Checkpoints;
using ClipSharp.Hub;
using ClipSharp.Modeling;
using ClipSharp.Text;
using static TorchSharp.torch;

namespace ClipSharp.Cli.Commands;

/// <summary>Options and helpers shared by several commands.</summary>
internal static class Common
{
    public static Option<string> ModelOption(bool required = true) => new("--model", "-m")
    {
        Description = "Checkpoint (.safetensors, PyTorch .pt/.bin, OpenAI TorchScript .pt, Hugging Face folder) or a pretrained name: " +
                      "ARCH:TAG (ViT-B-32:openai), hf-hub:org/name[@revision], local-dir:PATH (see clip models list)",
        Required = required,
        // Names are resolved (and downloaded) here, so every command sees a local path: the weights, with the config
        // and tokenizer files beside them where the loaders look.
        CustomParser = r => ResolveModelArgument(r.Tokens[^1].Value),
    };

    /// <summary>An existing path as it is; a pretrained name (<see cref="PretrainedResolver.IsPretrainedName"/>) resolved to
    /// local files, downloading them with progress on stderr (environment: HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE, HF_TOKEN).</summary>
    public static string ResolveModelArgument(string value)
    {
        if (File.Exists(value) || Directory.Exists(value) || !PretrainedResolver.IsPretrainedName(value)) return value;
        var resolved = PretrainedResolver.Resolve(value, null, PretrainedOptions.FromEnvironment(), new DownloadProgressPrinter(Console.Error));
        foreach (var note in resolved.Notes) Console.Error.WriteLine($"clip: note: {note}");
        return resolved.CheckpointPath;
    }

    public static Option<string?> ConfigOption() => new("--config")
    {
        Description = "Architecture JSON (reference constructor names); needed when head counts differ from width/64",
    };

    public static Option<string?> VocabOption() => new("--vocab")
    {
        Description = $"BPE vocabulary (a .txt.gz like {VocabularyLocator.BpeFileName}, or a Hugging Face vocab.json); default: the one the checkpoint records or keeps beside it, " +
                      $"${VocabularyLocator.EnvironmentVariable}, ~/.cache/clipsharp, else OpenAI's built-in {VocabularyLocator.BpeFileName}",
    };

    /// <summary>
    /// The model's tokenizer (<see cref="ClipModel.LoadTokenizer"/>): <paramref name="vocab"/> or the model's own vocabulary,
    /// refused in one line when its size differs from the model's vocab_size, before any tensor work.
    /// </summary>
    public static ClipTokenizer LoadTokenizer(ClipModel model, string? vocab)
    {
        try { return model.LoadTokenizer(vocab); }
        catch (VocabularyMismatchException e)
        {
            throw new CliException(e.Description + (vocab is null
                ? "; pass --vocab with the vocabulary the model was trained with"
                : "; --vocab must be the vocabulary the model was trained with"));
        }
    }

    public static ClipModel LoadModel(string path, string? config)
    {
        path = ResolveModelArgument(path);
        if (!File.Exists(path) && !Directory.Exists(path)) throw new CliException($"checkpoint not found: {path}");
        if (config is not null && Directory.Exists(config)) throw new CliException($"--config {config}: a directory, not a config JSON file");
        if (config is not null && !File.Exists(config)) throw new CliException($"--config {config}: file not found");
        try { return ClipModel.Load(path, config); }
        catch (ClipSharpException e) when (config is not null && e.Message.StartsWith($"config {config} does not fit", StringComparison.Ordinal))
        {
            // Name the option the user typed.
            throw new CliException("--" + e.Message);
        }
    }

    public static void RequireFiles(IEnumerable<string> paths)
    {
        foreach (var p in paths)
            if (!File.Exists(p)) throw new CliException($"file not found: {p}");
    }

    /// <summary>Reads one tensor from a safetensors file: the named one, the only one, or all [C,H,W] tensors stacked in file order.</summary>
    public static Tensor ReadTensor(string path, string preferredName, bool stackImages)
    {
        if (!File.Exists(path)) throw new CliException($"file not found: {path}");
        using var sd = SafeTensors.Load(path);
        if (sd.TryGetValue(preferredName, out var named)) return named.clone();
        if (sd.Count == 1) return sd.Keys.Select(k => sd[k]).First().clone();
        if (stackImages && sd.Keys.All(k => sd[k].dim() == 3))
            return stack(sd.Keys.Select(k => sd[k]).ToArray());
        throw new CliException($"{path}: expected a tensor named '{preferredName}' or a single tensor, found {string.Join(", ", sd.Keys)}");
    }
}
