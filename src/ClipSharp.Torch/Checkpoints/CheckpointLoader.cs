using System.Buffers.Binary;
using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Checkpoints;

/// <summary>How a checkpoint was stored.</summary>
public enum CheckpointFormat
{
    /// <summary>A safetensors file in the OpenAI layout.</summary>
    Safetensors,
    /// <summary>A <c>torch.save</c> zip (.pt/.pth/.bin), including OpenCLIP training checkpoints.</summary>
    TorchZip,
    /// <summary>A TorchScript archive (<c>torch.jit.save</c>), like OpenAI's released models.</summary>
    TorchScript,
    /// <summary>A Hugging Face CLIPModel (directory or weights file with a <c>config.json</c>), converted to the OpenAI layout.</summary>
    HuggingFace,
}

/// <summary>The result of <see cref="CheckpointLoader.Load"/>: OpenAI-layout tensors plus what was learned on the way.</summary>
public sealed class LoadedCheckpoint : IDisposable
{
    internal LoadedCheckpoint(string path, CheckpointFormat format, StateDict state, IReadOnlyDictionary<string, string> metadata,
        IReadOnlyDictionary<string, long> scalarBuffers, IReadOnlyList<string> notes, ClipConfig? config)
    {
        Path = path; Format = format; State = state; Metadata = metadata; ScalarBuffers = scalarBuffers; Notes = notes; Config = config;
    }

    /// <summary>The file or directory that was loaded.</summary>
    public string Path { get; }
    /// <summary>Detected storage format.</summary>
    public CheckpointFormat Format { get; }
    /// <summary>Tensors in the OpenAI (reference <c>state_dict</c>) layout, floating point upcast to float32 unless disabled.</summary>
    public StateDict State { get; }
    /// <summary>safetensors <c>__metadata__</c>, or non-tensor entries of a torch checkpoint (e.g. OpenCLIP's epoch).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Scalar buffers removed from the state_dict as the reference <c>build_model</c> does
    /// (<c>input_resolution</c>, <c>context_length</c>, <c>vocab_size</c> of OpenAI's TorchScript releases).</summary>
    public IReadOnlyDictionary<string, long> ScalarBuffers { get; }
    /// <summary>Conversions applied while loading, in plain words.</summary>
    public IReadOnlyList<string> Notes { get; }
    /// <summary>Hyperparameters that came with the checkpoint (a Hugging Face config.json), or null.</summary>
    public ClipConfig? Config { get; }

    /// <summary><see cref="Config"/> if known, otherwise the <c>build_model</c> inference from the tensor shapes.</summary>
    public ClipConfig ConfigOrInferred() => Config ?? ArchitectureInference.Infer(State);

    /// <summary>Disposes the tensors.</summary>
    public void Dispose() => State.Dispose();
}

/// <summary>
/// One-call loading of CLIP weights in any supported format, detected from the file's first bytes (not its name):
/// safetensors, torch.save zips, TorchScript archives and Hugging Face CLIPModel checkpoints (converted to the OpenAI layout).
/// </summary>
public static class CheckpointLoader
{
    /// <summary>Scalar buffers of OpenAI's TorchScript releases that the reference build_model deletes.</summary>
    public static IReadOnlyList<string> ExtraScalarKeys { get; } = ["input_resolution", "context_length", "vocab_size"];

    /// <summary>Loads a checkpoint and returns OpenAI-layout tensors.</summary>
    /// <param name="path">A weights file, or a Hugging Face model directory.</param>
    /// <param name="upcastToFloat32">Convert float16 and bfloat16 tensors to float32 (default true; exact, no rounding).</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="ClipSharpException">The file is truncated, of an unsupported or legacy format, or not a CLIP checkpoint; the message names the file.</exception>
    public static LoadedCheckpoint Load(string path, bool upcastToFloat32 = true)
    {
        ArgumentNullException.ThrowIfNull(path);
        string? hfConfigPath = null;
        string weights = path;
        if (Directory.Exists(path))
        {
            hfConfigPath = System.IO.Path.Combine(path, "config.json");
            if (!File.Exists(hfConfigPath)) throw new ClipSharpException($"{path}: a directory needs a Hugging Face config.json and model.safetensors or pytorch_model.bin");
            weights = new[] { "model.safetensors", "pytorch_model.bin" }.Select(f => System.IO.Path.Combine(path, f)).FirstOrDefault(File.Exists)
                ?? throw new ClipSharpException($"{path}: the directory has config.json but neither model.safetensors nor pytorch_model.bin");
        }
        else if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint not found: {path}", path);
        else
        {
            var sibling = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, "config.json");
            if (File.Exists(sibling)) hfConfigPath = sibling;
        }

        var kind = Sniff(weights);
        StateDict sd;
        IReadOnlyDictionary<string, string> metadata;
        var notes = new List<string>();
        CheckpointFormat format;
        switch (kind)
        {
            case CheckpointFormat.Safetensors:
                {
                    // Reject a foreign file from its header alone, before reading any tensor data.
                    var names = SafeTensors.ReadHeader(weights).Entries.Select(e => e.Name).ToList();
                    if (!HuggingFaceLayout.IsHuggingFace(names)) ValidateClipKeys(names, weights);
                }
                sd = SafeTensors.Load(weights, out metadata);
                format = CheckpointFormat.Safetensors;
                break;
            default:
                sd = TorchArchive.Load(weights, out var info);
                metadata = info.Extras;
                notes.AddRange(info.Notes);
                format = info.IsTorchScript ? CheckpointFormat.TorchScript : CheckpointFormat.TorchZip;
                break;
        }

        try
        {
            var scalars = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var k in ExtraScalarKeys)
            {
                if (sd.TryGetValue(k, out var t) && t.numel() == 1)
                {
                    scalars[k] = t.to_type(ScalarType.Int64).item<long>();
                    sd.Remove(k);
                    notes.Add($"removed scalar buffer '{k}' = {scalars[k]} (as build_model does)");
                }
            }

            ClipConfig? config = null;
            if (HuggingFaceLayout.IsHuggingFace(sd.Keys))
            {
                if (hfConfigPath is not null) config = HuggingFaceLayout.ReadConfig(hfConfigPath);
                var converted = HuggingFaceLayout.ToOpenAI(sd, config);
                sd.Dispose();
                sd = converted;
                format = CheckpointFormat.HuggingFace;
                notes.Add("converted the Hugging Face CLIPModel layout to the OpenAI layout");
            }

            if (upcastToFloat32)
            {
                int n = 0;
                foreach (var k in sd.Keys.ToList())
                {
                    var t = sd[k];
                    if (t.dtype is ScalarType.Float16 or ScalarType.BFloat16)
                    {
                        sd.Set(k, t.to_type(ScalarType.Float32));
                        n++;
                    }
                }
                if (n > 0) notes.Add($"upcast {n} float16/bfloat16 tensors to float32");
            }

            ValidateClipKeys(sd, weights);
            return new LoadedCheckpoint(path, format, sd, metadata, scalars, notes, config);
        }
        catch
        {
            sd.Dispose();
            throw;
        }
    }

    /// <summary>Detects the container format from the first bytes and checks that the file is complete enough to try.</summary>
    /// <returns><see cref="CheckpointFormat.Safetensors"/> or <see cref="CheckpointFormat.TorchZip"/> (a zip of either torch kind).</returns>
    /// <exception cref="ClipSharpException">Unknown, legacy or truncated file.</exception>
    public static CheckpointFormat Sniff(string path)
    {
        Span<byte> head = stackalloc byte[8];
        long length;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            length = fs.Length;
            if (length < 8) throw new ClipSharpException($"{path}: the file is only {length} bytes; it is empty or truncated, not a checkpoint");
            fs.ReadExactly(head);
        }
        if (head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4) return CheckpointFormat.TorchZip;
        if (head[0] == 0x80 && head[1] is >= 2 and <= 5)
            throw new ClipSharpException(
                $"{path}: this is an old-format (pre-zip, PyTorch < 1.6 or _use_new_zipfile_serialization=False) torch pickle, which ClipSharp does not support. " +
                "Convert it with PyTorch: torch.save(torch.load('old.pt', map_location='cpu'), 'new.pt'), or save the state_dict with safetensors.torch.save_file.");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(head);
        if (n >= 2 && n <= SafeTensors.MaxHeaderBytes)
        {
            if ((long)n > length - 8)
                throw new ClipSharpException($"{path}: not a valid safetensors file: header length {n} runs past the end of the file ({length} bytes); the file is probably truncated");
            return CheckpointFormat.Safetensors;
        }
        throw new ClipSharpException($"{path}: unrecognised checkpoint format (neither safetensors nor a PyTorch zip archive)");
    }

    /// <summary>Keys every OpenAI-layout CLIP state_dict has (the image tower adds ViT or ResNet keys).</summary>
    public static IReadOnlyList<string> RequiredTextKeys { get; } =
        ["positional_embedding", "text_projection", "logit_scale", "token_embedding.weight", "ln_final.weight", "ln_final.bias",
         "transformer.resblocks.0.attn.in_proj_weight"];

    static readonly string[] VitKeys = ["visual.class_embedding", "visual.positional_embedding", "visual.proj", "visual.conv1.weight", "visual.ln_post.weight"];
    static readonly string[] ResNetKeys = ["visual.conv1.weight", "visual.layer1.0.conv1.weight", "visual.attnpool.positional_embedding", "visual.attnpool.c_proj.weight"];

    /// <summary>Checks that the tensors form an OpenAI-layout CLIP model; throws listing what is missing otherwise.</summary>
    /// <exception cref="ClipSharpException">Keys are missing.</exception>
    public static void ValidateClipKeys(StateDict stateDict, string source = "checkpoint")
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        ValidateClipKeys(stateDict.Keys, source);
    }

    /// <summary>Checks tensor names (e.g. from a safetensors header) without needing the tensors.</summary>
    /// <exception cref="ClipSharpException">Keys are missing.</exception>
    public static void ValidateClipKeys(IReadOnlyCollection<string> keys, string source = "checkpoint")
    {
        ArgumentNullException.ThrowIfNull(keys);
        var set = keys as ISet<string> ?? new HashSet<string>(keys, StringComparer.Ordinal);
        var imageKeys = set.Contains("visual.proj") || !set.Contains("visual.attnpool.positional_embedding") ? VitKeys : ResNetKeys;
        var missing = RequiredTextKeys.Concat(imageKeys).Where(k => !set.Contains(k)).ToList();
        if (missing.Count == 0) return;
        string sample = keys.Count == 0 ? "it holds no tensors" : $"it holds {keys.Count} tensors such as {string.Join(", ", keys.Take(5))}";
        throw new ClipSharpException(
            $"{source}: not a CLIP checkpoint in the OpenAI layout; missing {string.Join(", ", missing)} ({sample})");
    }
}
