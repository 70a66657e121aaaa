using System.CommandLine;
using ClipSharp.Checkpoints;
using ClipSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip encode</c>: image and/or text embeddings (unnormalised) and logits to a safetensors file.</summary>
internal static class EncodeCommand
{
    public static Command Create()
    {
        var model = Common.ModelOption();
        var config = Common.ConfigOption();
        var vocab = Common.VocabOption();
        var images = new Option<string[]>("--images") { Description = "Image files", AllowMultipleArgumentsPerToken = true };
        var pixels = new Option<string?>("--pixel-values") { Description = "safetensors with preprocessed pixels ('pixel_values' [N,3,R,R], or [3,R,R] tensors as written by clip preprocess)" };
        var texts = new Option<string[]>("--texts") { Description = "Texts", AllowMultipleArgumentsPerToken = true };
        var ids = new Option<string?>("--input-ids") { Description = "safetensors with token ids ('input_ids' [N,77])" };
        var output = new Option<string>("--output", "-o") { Description = "Output safetensors: image_embeds, text_embeds, logits_per_image", Required = true };
        var cmd = new Command("encode", "Embed images and texts with a CLIP checkpoint") { model, config, vocab, images, pixels, texts, ids, output };
        cmd.SetAction(r =>
        {
            var imageFiles = r.GetValue(images) ?? [];
            var textList = r.GetValue(texts) ?? [];
            var pixelFile = r.GetValue(pixels);
            var idsFile = r.GetValue(ids);
            if (imageFiles.Length > 0 && pixelFile is not null) throw new CliException("give either --images or --pixel-values, not both");
            if (textList.Length > 0 && idsFile is not null) throw new CliException("give either --texts or --input-ids, not both");
            if (imageFiles.Length == 0 && pixelFile is null && textList.Length == 0 && idsFile is null)
                throw new CliException("nothing to encode: give --images/--pixel-values and/or --texts/--input-ids");
            Common.RequireFiles(imageFiles);

            using var m = Common.LoadModel(r.GetValue(model)!, r.GetValue(config));
            // Checked before any image is encoded.
            var tokenizer = textList.Length > 0 ? Common.LoadTokenizer(m, r.GetValue(vocab)) : null;
            using var scope = NewDisposeScope();
            using var _ = torch.inference_mode();
            using var result = new StateDict();
            Tensor? img = null, txt = null;
            if (imageFiles.Length > 0) img = m.EncodeImages(imageFiles);
            else if (pixelFile is not null) img = m.EncodeImage(CheckedPixels(Common.ReadTensor(pixelFile, "pixel_values", stackImages: true), pixelFile, m.Config.ImageResolution));
            if (tokenizer is not null) txt = m.EncodeTexts(textList, tokenizer);
            else if (idsFile is not null) txt = m.EncodeText(CheckedIds(Common.ReadTensor(idsFile, "input_ids", stackImages: false), idsFile, m.Config.VocabSize));
            if (img is not null) result.Add("image_embeds", img.clone());
            if (txt is not null) result.Add("text_embeds", txt.clone());
            if (img is not null && txt is not null) result.Add("logits_per_image", m.Logits(img, txt).LogitsPerImage.clone());
            SafeTensors.Save(r.GetValue(output)!, result);
            Console.Error.WriteLine($"wrote {string.Join(", ", result.Keys.Select(k => $"{k} [{string.Join(",", result[k].shape)}]"))} to {r.GetValue(output)}");
            return 0;
        });
        return cmd;
    }

    /// <summary>Pixels from a file: floating point [N, 3, R, R] at the model's resolution, or the positional embedding
    /// add would fail deep in libtorch with a size mismatch and its trace.</summary>
    static Tensor CheckedPixels(Tensor pixels, string path, int resolution)
    {
        string Shape() => $"[{string.Join(",", pixels.shape)}]";
        if (!pixels.is_floating_point()) throw new CliException($"{path}: pixel_values must be floating point, found {pixels.dtype}");
        if (pixels.dim() == 3) pixels = pixels.unsqueeze(0);
        if (pixels.dim() != 4 || pixels.shape[1] != 3)
            throw new CliException($"{path}: pixel_values must be [N,3,{resolution},{resolution}], found {Shape()}");
        if (pixels.shape[2] != resolution || pixels.shape[3] != resolution)
            throw new CliException($"{path}: pixel_values are {pixels.shape[3]}x{pixels.shape[2]} px, the model takes {resolution}x{resolution} (preprocess for this model: clip preprocess --size {resolution})");
        return pixels;
    }

    /// <summary>Token ids from a file: integers in [0, vocab_size) in rows, or the embedding lookup would abort in libtorch.</summary>
    static Tensor CheckedIds(Tensor ids, string path, int vocabSize)
    {
        if (ids.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte))
            throw new CliException($"{path}: input_ids must be integers, found {ids.dtype}");
        if (ids.dim() != 2) throw new CliException($"{path}: input_ids must be [N, context_length], found [{string.Join(",", ids.shape)}]");
        if (ids.numel() > 0)
        {
            long min = ids.min().to(ScalarType.Int64).item<long>(), max = ids.max().to(ScalarType.Int64).item<long>();
            if (min < 0 || max >= vocabSize)
                throw new CliException($"{path}: input_ids hold ids from {min} to {max}, outside the model's vocabulary of {vocabSize} (0..{vocabSize - 1})");
        }
        return ids;
    }
}
