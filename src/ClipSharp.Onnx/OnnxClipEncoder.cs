using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ClipSharp;

/// <summary>
/// A CLIP model exported by <c>clip export onnx</c>, run by ONNX Runtime: the <see cref="IClipEncoder"/> backend that
/// needs no libtorch. It reads the folder's <c>vision_model.onnx</c> and <c>text_model.onnx</c>, the configuration,
/// the preprocessing and the logit scale written beside them, and the vocabulary they were trained with.
/// </summary>
/// <remarks>
/// <code>
/// using var clip = OnnxClipEncoder.Open("exported/");
/// var scores = clip.Classify("cat.jpg", ["a cat", "a dog", "a car"]);   // probabilities, highest first
/// </code>
/// One batch runs at a time per encoder (ONNX Runtime itself uses all cores inside a batch unless
/// <see cref="SessionOptions"/> say otherwise).
/// </remarks>
public sealed class OnnxClipEncoder : IClipEncoder
{
    readonly InferenceSession _vision;
    readonly InferenceSession _text;
    readonly Lock _gate = new();
    bool _disposed;

    OnnxClipEncoder(string directory, InferenceSession vision, InferenceSession text, ClipConfig config,
        ClipImagePreprocessorOptions preprocessing, OnnxExportLayout manifest, ClipTokenizer tokenizer)
    {
        Directory = directory; _vision = vision; _text = text; Config = config; Preprocessing = preprocessing;
        LogitScale = MathF.Exp(manifest.LogitScaleLog); Quantization = manifest.Quantization; Tokenizer = tokenizer;
        Preprocessor = new ClipImagePreprocessor(preprocessing);
    }

    /// <summary>
    /// Opens an export folder. Every file is checked before a session starts: a missing or malformed one is refused
    /// with a <see cref="ClipSharpException"/> naming it.
    /// </summary>
    /// <param name="directory">A folder written by <c>clip export onnx</c>.</param>
    /// <param name="options">ONNX Runtime session options (threads, execution providers); null for the defaults.</param>
    /// <exception cref="ClipSharpException">The folder is not a complete ClipSharp ONNX export, or a graph does not load.</exception>
    public static OnnxClipEncoder Open(string directory, SessionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!System.IO.Directory.Exists(directory))
            throw new ClipSharpException(File.Exists(directory)
                ? $"{directory}: is a file; an ONNX model is the folder clip export onnx writes"
                : $"{directory}: no such folder");
        string dir = Path.GetFullPath(directory);
        string Need(string name)
        {
            var path = Path.Combine(dir, name);
            if (!File.Exists(path)) throw new ClipSharpException($"{directory}: {name} is missing (not a complete clip export onnx folder)");
            return path;
        }
        string manifestPath = Need(OnnxExportLayout.ManifestFile), configPath = Need(OnnxExportLayout.ConfigFile),
            prePath = Need(OnnxExportLayout.PreprocessorFile), visionPath = Need(OnnxExportLayout.VisionModelFile), textPath = Need(OnnxExportLayout.TextModelFile);
        OnnxExportLayout manifest;
        ClipConfig config;
        ClipImagePreprocessorOptions preprocessing;
        ClipTokenizer tokenizer;
        try
        {
            manifest = OnnxExportLayout.FromJson(File.ReadAllText(manifestPath), manifestPath);
            config = ClipConfig.FromJsonFile(configPath);
            preprocessing = OnnxExportLayout.ReadPreprocessor(File.ReadAllText(prePath), prePath);
            tokenizer = VocabularyLocator.Load(null, dir, manifest.Vocabulary);
        }
        catch (Exception e) when (e is not ClipSharpException and (IOException or FormatException or System.Text.Json.JsonException or InvalidOperationException or KeyNotFoundException))
        {
            throw new ClipSharpException($"{directory}: {e.Message}", e);
        }
        if (preprocessing.Size != config.ImageResolution)
            throw new ClipSharpException($"{prePath}: crop size {preprocessing.Size} does not match image_resolution {config.ImageResolution} of {configPath}");
        if (tokenizer.VocabSize != config.VocabSize)
            throw new VocabularyMismatchException(directory, config.VocabSize, tokenizer);

        InferenceSession? vision = null;
        try
        {
            vision = Session(visionPath, options, "pixel_values", "image_embeds");
            var text = Session(textPath, options, "input_ids", "text_embeds");
            return new OnnxClipEncoder(dir, vision, text, config, preprocessing, manifest, tokenizer);
        }
        catch
        {
            vision?.Dispose();
            throw;
        }
    }

    static InferenceSession Session(string path, SessionOptions? options, string input, string output)
    {
        InferenceSession session;
        try { session = options is null ? new InferenceSession(path) : new InferenceSession(path, options); }
        catch (OnnxRuntimeException e) { throw new ClipSharpException($"{path}: ONNX Runtime cannot load it: {FirstLine(e.Message)}", e); }
        if (!session.InputMetadata.ContainsKey(input) || !session.OutputMetadata.ContainsKey(output))
        {
            session.Dispose();
            throw new ClipSharpException($"{path}: expected input '{input}' and output '{output}' (not a clip export onnx graph)");
        }
        return session;
    }

    static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();

    /// <summary>The export folder.</summary>
    public string Directory { get; }

    /// <inheritdoc />
    public ClipConfig Config { get; }

    /// <inheritdoc />
    public ClipImagePreprocessorOptions Preprocessing { get; }

    /// <summary>The preprocessor for <see cref="Preprocessing"/> (decode, Pillow-exact resize, centre crop, normalise).</summary>
    public ClipImagePreprocessor Preprocessor { get; }

    /// <summary>The model's tokenizer (its own vocabulary from the export folder, else the built-in one it declares).</summary>
    public ClipTokenizer Tokenizer { get; }

    /// <summary>How the weights are stored: <c>none</c> (float32) or the quantisation the export applied.</summary>
    public string Quantization { get; }

    /// <inheritdoc />
    public float LogitScale { get; }

    /// <inheritdoc />
    public float? LogitBias => null;

    /// <inheritdoc />
    public float[] EncodeImages(ReadOnlySpan<float> pixels, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        int size = Preprocessing.Size;
        long per = 3L * size * size;
        if (pixels.Length != count * per)
            throw new ArgumentException($"{count} images of 3×{size}×{size} need {count * per} floats; {pixels.Length} were given", nameof(pixels));
        var input = new DenseTensor<float>(pixels.ToArray(), [count, 3, size, size]);
        return Run(_vision, NamedOnnxValue.CreateFromTensor("pixel_values", input), "image_embeds", count);
    }

    /// <inheritdoc />
    public float[] EncodeTexts(ReadOnlySpan<long> tokenIds, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        int ctx = Config.ContextLength;
        if (tokenIds.Length != (long)count * ctx)
            throw new ArgumentException($"{count} texts of {ctx} tokens need {(long)count * ctx} ids; {tokenIds.Length} were given", nameof(tokenIds));
        foreach (long id in tokenIds)
            if (id < 0 || id >= Config.VocabSize)
                throw new ArgumentException($"token id {id} is outside the vocabulary of {Config.VocabSize}", nameof(tokenIds));
        var input = new DenseTensor<long>(tokenIds.ToArray(), [count, ctx]);
        return Run(_text, NamedOnnxValue.CreateFromTensor("input_ids", input), "text_embeds", count);
    }

    float[] Run(InferenceSession session, NamedOnnxValue input, string output, int count)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var results = session.Run([input], [output]);
            var features = results[0].AsTensor<float>();
            if (features.Dimensions.Length != 2 || features.Dimensions[0] != count || features.Dimensions[1] != Config.EmbedDim)
                throw new ClipSharpException($"{Directory}: {output} has shape [{string.Join(", ", features.Dimensions.ToArray())}], expected [{count}, {Config.EmbedDim}]");
            return features.ToArray();
        }
    }

    /// <summary>Label probabilities for an image file, highest first (see <see cref="ClipEncoderExtensions.Classify"/>), with this model's tokenizer and preprocessing.</summary>
    /// <param name="imagePath">An image file.</param>
    /// <param name="labels">Candidate texts, at least one.</param>
    public IReadOnlyList<LabelProbability> Classify(string imagePath, IReadOnlyList<string> labels) =>
        ClipEncoderExtensions.Classify(this, imagePath, labels, Tokenizer, Preprocessor);

    /// <summary>Unit-length embeddings of image files, in order (see <see cref="ClipEncoderExtensions.EmbedImages"/>).</summary>
    /// <param name="imagePaths">Image files.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public float[][] EmbedImages(IEnumerable<string> imagePaths, CancellationToken cancellationToken = default) =>
        ClipEncoderExtensions.EmbedImages(this, imagePaths, Preprocessor, cancellationToken: cancellationToken);

    /// <summary>Unit-length embeddings of texts, in order (see <see cref="ClipEncoderExtensions.EmbedTexts"/>).</summary>
    /// <param name="texts">The texts (truncated to the context length).</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public float[][] EmbedTexts(IEnumerable<string> texts, CancellationToken cancellationToken = default) =>
        ClipEncoderExtensions.EmbedTexts(this, texts, Tokenizer, cancellationToken: cancellationToken);

    /// <summary>Releases both ONNX Runtime sessions.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _vision.Dispose();
            _text.Dispose();
        }
    }
}
