using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using ClipSharp.Checkpoints;
using ClipSharp.Hub;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Text;
using Microsoft.Extensions.AI;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp;

/// <summary>
/// A CLIP model with everything needed to go from files and strings to embeddings and label probabilities: the weights
/// and their configuration, the preprocessing declared with them (input size, mean and std), and the model's own
/// tokenizer. <see cref="ClipModel"/> stays tensors in, tensors out; this is the object an application holds.
/// </summary>
/// <remarks>
/// <code>
/// using var clip = ClipPipeline.FromPretrained("ViT-B-32", "openai");
/// var scores = clip.Classify("cat.jpg", ["a cat", "a dog", "a car"]);   // probabilities, highest first
/// Console.WriteLine(scores[0]);
/// </code>
/// Embeddings from <see cref="EmbedImages(IEnumerable{string}, CancellationToken)"/>, <see cref="EmbedTexts"/> and the
/// <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> implementation are unit length (L2-normalised), so a dot product
/// is the cosine similarity; image and text embeddings share one space. Inputs are processed in batches of
/// <see cref="BatchSize"/> (images decoded in parallel); one batch runs at a time per pipeline.
/// </remarks>
public sealed class ClipPipeline : IEmbeddingGenerator<string, Embedding<float>>
{
    readonly bool _ownsModel;
    readonly Lock _gate = new();
    bool _disposed;

    /// <summary>Wraps a loaded model. The tokenizer defaults to <see cref="ClipModel.LoadTokenizer"/> (the model's own vocabulary, else the built-in one).</summary>
    /// <param name="model">The model; disposed with the pipeline when <paramref name="ownsModel"/> is true.</param>
    /// <param name="tokenizer">The tokenizer, checked against the model's vocabulary size; null for the model's own.</param>
    /// <param name="name">The name reported as the embedding model id; null for the checkpoint path.</param>
    /// <param name="ownsModel">Whether <see cref="Dispose"/> disposes <paramref name="model"/>.</param>
    /// <exception cref="VocabularyMismatchException">The tokenizer's vocabulary does not fit the model.</exception>
    public ClipPipeline(ClipModel model, ClipTokenizer? tokenizer = null, string? name = null, bool ownsModel = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        Tokenizer = tokenizer ?? model.LoadTokenizer();
        model.CheckVocabulary(Tokenizer);
        Preprocessor = model.CreatePreprocessor();
        Name = name ?? model.CheckpointPath ?? "clip";
        _ownsModel = ownsModel;
        Metadata = new EmbeddingGeneratorMetadata("ClipSharp", null, Name, model.Config.EmbedDim);
    }

    /// <summary>
    /// Loads a model by name or path: an architecture and a pretraining tag (<c>("ViT-B-32", "openai")</c>, any entry of
    /// <see cref="PretrainedModels.All"/>), or one string: <c>ARCH:TAG</c>, <c>hf-hub:org/name[@revision]</c>,
    /// <c>local-dir:PATH</c>, or an existing checkpoint file or model folder. Names are resolved by
    /// <see cref="PretrainedResolver"/> (downloading into the Hugging Face cache what it lacks); the configuration,
    /// normalisation and vocabulary come from beside the weights.
    /// </summary>
    /// <param name="name">An architecture (with <paramref name="tag"/>), a pretrained name, or a checkpoint path.</param>
    /// <param name="tag">The pretraining tag for an architecture; null for the other forms.</param>
    /// <param name="options">Hub endpoint, caches, token; null reads the environment (HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE, HF_TOKEN).</param>
    /// <param name="progress">Receives download progress.</param>
    /// <exception cref="ClipSharpException">Unknown name, download failure, or an unusable checkpoint.</exception>
    public static ClipPipeline FromPretrained(string name, string? tag = null, PretrainedOptions? options = null, IProgress<DownloadProgress>? progress = null) =>
        FromPretrainedAsync(name, tag, options, progress).GetAwaiter().GetResult();

    /// <summary>The awaitable form of <see cref="FromPretrained"/>; cancelling keeps a partial download for the next call to resume.</summary>
    /// <param name="name">An architecture (with <paramref name="tag"/>), a pretrained name, or a checkpoint path.</param>
    /// <param name="tag">The pretraining tag for an architecture; null for the other forms.</param>
    /// <param name="options">Hub endpoint, caches, token; null reads the environment.</param>
    /// <param name="progress">Receives download progress.</param>
    /// <param name="cancellationToken">Cancels the download.</param>
    public static async Task<ClipPipeline> FromPretrainedAsync(string name, string? tag = null, PretrainedOptions? options = null,
        IProgress<DownloadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        string checkpoint;
        string? vocabulary = null;
        string display = tag is null ? name : $"{name}:{tag}";
        if (tag is null && (File.Exists(name) || Directory.Exists(name)))
        {
            checkpoint = name;
        }
        else if (tag is not null || PretrainedResolver.IsPretrainedName(name))
        {
            var resolved = await PretrainedResolver.ResolveAsync(name, tag, options, progress, cancellationToken).ConfigureAwait(false);
            checkpoint = resolved.CheckpointPath;
            vocabulary = resolved.VocabularyPath;
        }
        else
        {
            throw new ClipSharpException($"{name}: no such checkpoint file or folder, and not a pretrained name (ARCH:TAG, hf-hub:org/name, local-dir:PATH)");
        }
        var model = ClipModel.Load(checkpoint);
        try
        {
            return new ClipPipeline(model, model.LoadTokenizer(vocabulary), display);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The model (tensors in, tensors out).</summary>
    public ClipModel Model { get; }

    /// <summary>The model's tokenizer.</summary>
    public ClipTokenizer Tokenizer { get; }

    /// <summary>The preprocessing the weights declare: input resolution, mean and std.</summary>
    public ClipImagePreprocessor Preprocessor { get; }

    /// <summary>The name the pipeline was loaded by (reported as the embedding model id).</summary>
    public string Name { get; }

    /// <summary>The length of every embedding (the model's <c>embed_dim</c>).</summary>
    public int Dimensions => Model.Config.EmbedDim;

    /// <summary>How many images or texts go through the model at once (default 32).</summary>
    public int BatchSize
    {
        get;
        set { ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value); field = value; }
    } = 32;

    /// <summary>Describes this generator (provider <c>ClipSharp</c>, model id <see cref="Name"/>, <see cref="Dimensions"/>).</summary>
    public EmbeddingGeneratorMetadata Metadata { get; }

    // ---- Classification ----

    /// <summary>
    /// The probability of each label for an image: the softmax over the labels of the model's scaled cosine
    /// similarities (its own logit scale), highest first. Labels are used as written — write them as prompts
    /// ("a photo of a cat"). The same numbers as <c>clip similarity</c>.
    /// </summary>
    /// <param name="imagePath">An image file.</param>
    /// <param name="labels">Candidate texts, at least one.</param>
    /// <exception cref="ImageDecodeException">The file is not a decodable image.</exception>
    public IReadOnlyList<LabelProbability> Classify(string imagePath, IReadOnlyList<string> labels) => Classify(ImageInput.FromPath(imagePath), labels);

    /// <summary>As <see cref="Classify(string, IReadOnlyList{string})"/>, for an encoded image in memory.</summary>
    /// <param name="image">The encoded file contents (JPEG, PNG, WebP, GIF, BMP).</param>
    /// <param name="labels">Candidate texts, at least one.</param>
    public IReadOnlyList<LabelProbability> Classify(byte[] image, IReadOnlyList<string> labels) => Classify(ImageInput.FromBytes(image), labels);

    /// <summary>As <see cref="Classify(string, IReadOnlyList{string})"/>, for an encoded image read from a stream (read to its end, not disposed).</summary>
    /// <param name="image">A stream positioned at the start of an encoded image.</param>
    /// <param name="labels">Candidate texts, at least one.</param>
    public IReadOnlyList<LabelProbability> Classify(Stream image, IReadOnlyList<string> labels) => Classify(ImageInput.FromStream(image), labels);

    /// <summary>As <see cref="Classify(string, IReadOnlyList{string})"/>, for a SkiaSharp bitmap (its alpha is dropped, as Pillow's <c>convert("RGB")</c> does).</summary>
    /// <param name="image">The bitmap.</param>
    /// <param name="labels">Candidate texts, at least one.</param>
    public IReadOnlyList<LabelProbability> Classify(SKBitmap image, IReadOnlyList<string> labels) => Classify(ImageInput.FromBitmap(image), labels);

    IReadOnlyList<LabelProbability> Classify(ImageInput image, IReadOnlyList<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.Count == 0) throw new ArgumentException("At least one label is needed.", nameof(labels));
        ObjectDisposedException.ThrowIf(_disposed, this);
        float[,] probs;
        lock (_gate)
        {
            using var scope = NewDisposeScope();
            using var _ = torch.inference_mode();
            var imageFeatures = EncodeImageBatch([image], CancellationToken.None);
            var textFeatures = EncodeTexts(labels, CancellationToken.None);
            probs = Model.Probabilities(imageFeatures, textFeatures);
        }
        return Enumerable.Range(0, labels.Count)
            .Select(i => new LabelProbability(labels[i], probs[0, i]))
            .OrderByDescending(s => s.Probability)
            .ToList();
    }

    // ---- Image embeddings ----

    /// <summary>Unit-length embeddings of image files, in order, computed in batches.</summary>
    /// <param name="imagePaths">Image files (enumerated lazily, one batch at a time).</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <exception cref="ImageDecodeException">A file is not a decodable image (the first failing one in order is named).</exception>
    public float[][] EmbedImages(IEnumerable<string> imagePaths, CancellationToken cancellationToken = default) =>
        EmbedImages(Inputs(imagePaths, ImageInput.FromPath), cancellationToken);

    /// <summary>Unit-length embeddings of encoded images held in memory, in order.</summary>
    /// <param name="images">Encoded file contents.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public float[][] EmbedImages(IEnumerable<byte[]> images, CancellationToken cancellationToken = default) =>
        EmbedImages(Inputs(images, ImageInput.FromBytes), cancellationToken);

    /// <summary>Unit-length embeddings of encoded images read from streams (each read to its end, not disposed), in order.</summary>
    /// <param name="images">Streams positioned at the start of encoded images.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public float[][] EmbedImages(IEnumerable<Stream> images, CancellationToken cancellationToken = default) =>
        EmbedImages(Inputs(images, ImageInput.FromStream), cancellationToken);

    /// <summary>Unit-length embeddings of SkiaSharp bitmaps, in order.</summary>
    /// <param name="images">Bitmaps (alpha dropped).</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public float[][] EmbedImages(IEnumerable<SKBitmap> images, CancellationToken cancellationToken = default) =>
        EmbedImages(Inputs(images, ImageInput.FromBitmap), cancellationToken);

    /// <summary>
    /// Unit-length embeddings of image files as they are computed, batch by batch on a worker thread, for collections
    /// too large to hold at once.
    /// </summary>
    /// <param name="imagePaths">Image files (enumerated lazily).</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public IAsyncEnumerable<float[]> EmbedImagesAsync(IEnumerable<string> imagePaths, CancellationToken cancellationToken = default) =>
        StreamBatches(Inputs(imagePaths, ImageInput.FromPath), EmbedImageBatch, cancellationToken);

    /// <summary>As <see cref="EmbedImagesAsync(IEnumerable{string}, CancellationToken)"/>, for encoded images in memory.</summary>
    /// <param name="images">Encoded file contents.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public IAsyncEnumerable<float[]> EmbedImagesAsync(IEnumerable<byte[]> images, CancellationToken cancellationToken = default) =>
        StreamBatches(Inputs(images, ImageInput.FromBytes), EmbedImageBatch, cancellationToken);

    float[][] EmbedImages(IEnumerable<ImageInput> inputs, CancellationToken cancellationToken)
    {
        var all = new List<float[]>();
        foreach (var batch in inputs.Chunk(BatchSize)) all.AddRange(EmbedImageBatch(batch, cancellationToken));
        return [.. all];
    }

    float[][] EmbedImageBatch(IReadOnlyList<ImageInput> batch, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_gate)
        {
            using var scope = NewDisposeScope();
            using var _ = torch.inference_mode();
            return ToUnitRows(EncodeImageBatch(batch, cancellationToken));
        }
    }

    /// <summary>The one path from images to features: decode and preprocess in parallel into the batch tensor, run the image tower. Unnormalised; inside the caller's scope.</summary>
    unsafe Tensor EncodeImageBatch(IReadOnlyList<ImageInput> batch, CancellationToken cancellationToken)
    {
        int size = Preprocessor.Size, per = Preprocessor.OutputLength;
        var pixels = torch.empty([batch.Count, 3, size, size], ScalarType.Float32);
        var errors = new Exception?[batch.Count];
        long maxPixels = Preprocessor.Options.MaxImagePixels;
        fixed (byte* storage = TensorBytes.Span(pixels))
        {
            float* data = (float*)storage;
            Parallel.For(0, batch.Count, new ParallelOptions { CancellationToken = cancellationToken }, i =>
            {
                try { Preprocessor.ProcessInto(batch[i].Decode(maxPixels), new Span<float>(data + (long)i * per, per)); }
                catch (Exception e) { errors[i] = e; }
            });
        }
        foreach (var e in errors)
            if (e is not null) ExceptionDispatchInfo.Capture(e).Throw();
        return Model.EncodeImage(pixels);
    }

    // ---- Text embeddings ----

    /// <summary>Unit-length embeddings of texts, in order, computed in batches (over-long texts are truncated to the context length, as the reference <c>tokenize(truncate=True)</c>).</summary>
    /// <param name="texts">The texts.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public float[][] EmbedTexts(IEnumerable<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var all = new List<float[]>();
        foreach (var batch in texts.Chunk(BatchSize)) all.AddRange(EmbedTextBatch(batch, cancellationToken));
        return [.. all];
    }

    /// <summary>Unit-length embeddings of texts as they are computed, batch by batch on a worker thread.</summary>
    /// <param name="texts">The texts (enumerated lazily).</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public IAsyncEnumerable<float[]> EmbedTextsAsync(IEnumerable<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        return StreamBatches(texts, EmbedTextBatch, cancellationToken);
    }

    float[][] EmbedTextBatch(IReadOnlyList<string> batch, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_gate)
        {
            using var scope = NewDisposeScope();
            using var _ = torch.inference_mode();
            return ToUnitRows(EncodeTexts(batch, cancellationToken));
        }
    }

    /// <summary>Tokenize and run the text tower in batches; unnormalised features inside the caller's scope.</summary>
    Tensor EncodeTexts(IReadOnlyList<string> texts, CancellationToken cancellationToken)
    {
        var parts = new List<Tensor>();
        for (int start = 0; start < texts.Count; start += BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var ids = Tokenizer.ToTensor(texts.Skip(start).Take(BatchSize).ToList(), Model.Config.ContextLength, true);
            parts.Add(Model.EncodeText(ids));
        }
        return parts.Count == 1 ? parts[0] : torch.cat(parts, 0);
    }

    // ---- Microsoft.Extensions.AI ----

    /// <summary>
    /// Unit-length text embeddings for the .NET AI abstractions (vector stores, semantic search). The model id is
    /// <see cref="Name"/>; <see cref="EmbeddingGenerationOptions.Dimensions"/>, if set, must equal <see cref="Dimensions"/>.
    /// </summary>
    /// <param name="values">The texts.</param>
    /// <param name="options">Generation options (only <c>Dimensions</c> is read).</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (options?.Dimensions is int d && d != Dimensions)
            throw new ArgumentException($"{Name} makes {Dimensions}-dimensional embeddings; {d} were asked for.", nameof(options));
        var result = new GeneratedEmbeddings<Embedding<float>>();
        var now = DateTimeOffset.UtcNow;
        await foreach (var e in EmbedTextsAsync(values, cancellationToken).ConfigureAwait(false))
            result.Add(new Embedding<float>(e) { ModelId = Name, CreatedAt = now });
        return result;
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return Metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(Model)) return Model;
        return null;
    }

    /// <summary>Disposes the model (when the pipeline owns it).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            if (_ownsModel) Model.Dispose();
        }
    }

    // ---- helpers ----

    static IEnumerable<ImageInput> Inputs<T>(IEnumerable<T> items, Func<T, ImageInput> wrap)
    {
        ArgumentNullException.ThrowIfNull(items);
        return items.Select(wrap);
    }

    async IAsyncEnumerable<float[]> StreamBatches<T>(IEnumerable<T> items, Func<IReadOnlyList<T>, CancellationToken, float[][]> embed,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var batch in items.Chunk(BatchSize))
        {
            var rows = await Task.Run(() => embed(batch, cancellationToken), cancellationToken).ConfigureAwait(false);
            foreach (var row in rows) yield return row;
        }
    }

    static float[][] ToUnitRows(Tensor features)
    {
        var unit = features.to(ScalarType.Float32);
        unit = unit / unit.norm(1, keepdim: true);
        int n = (int)unit.shape[0], d = (int)unit.shape[1];
        var flat = unit.contiguous().data<float>().ToArray();
        var rows = new float[n][];
        for (int i = 0; i < n; i++) rows[i] = flat.AsSpan(i * d, d).ToArray();
        return rows;
    }

    /// <summary>An image as given: a path, encoded bytes, a stream, or a bitmap; decoded on the worker that preprocesses it.</summary>
    readonly struct ImageInput
    {
        readonly object _source;
        readonly string _name;

        ImageInput(object source, string name) { _source = source; _name = name; }

        public static ImageInput FromPath(string path) { ArgumentNullException.ThrowIfNull(path); return new(path, path); }
        public static ImageInput FromBytes(byte[] data) { ArgumentNullException.ThrowIfNull(data); return new(data, "image bytes"); }
        public static ImageInput FromBitmap(SKBitmap bitmap) { ArgumentNullException.ThrowIfNull(bitmap); return new(bitmap, "bitmap"); }

        public static ImageInput FromStream(Stream stream)
        {
            ArgumentNullException.ThrowIfNull(stream);
            // Read now, in the caller's order: a stream is not safe to read from the parallel workers.
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            return new(buffer.ToArray(), "image stream");
        }

        public DecodedImage Decode(long maxImagePixels) => _source switch
        {
            string path => ImageDecoder.Decode(path, maxImagePixels),
            byte[] data => ImageDecoder.Decode(data, _name, maxImagePixels),
            SKBitmap bitmap => FromSkia(bitmap),
            _ => throw new InvalidOperationException(),
        };

        static DecodedImage FromSkia(SKBitmap bitmap)
        {
            if (bitmap.Width <= 0 || bitmap.Height <= 0) throw new ImageDecodeException("bitmap", "the bitmap is empty");
            var info = new SKImageInfo(bitmap.Width, bitmap.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            var rgba = new byte[info.BytesSize];
            using var pixmap = bitmap.PeekPixels();
            unsafe
            {
                fixed (byte* p = rgba)
                    if (pixmap is null || !pixmap.ReadPixels(info, (nint)p, info.RowBytes, 0, 0))
                        throw new ImageDecodeException("bitmap", $"cannot read pixels of colour type {bitmap.ColorType}");
            }
            return DecodedImage.FromPixels(bitmap.Width, bitmap.Height, ImageMode.Rgba, rgba);
        }
    }
}
