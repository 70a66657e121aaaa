using TorchSharp;

namespace ClipSharp.Text;

/// <summary>TorchSharp tensors from <see cref="ClipTokenizer"/> (the tokenizer itself lives in ClipSharp.Core and knows no tensors).</summary>
public static class ClipTokenizerTensors
{
    extension(ClipTokenizer tokenizer)
    {
        /// <summary>
        /// Tokenizes a batch into a TorchSharp int64 tensor of shape <c>[texts.Count, contextLength]</c>
        /// (the reference returns int32; models index embeddings with int64).
        /// </summary>
        /// <param name="texts">Raw texts.</param>
        /// <param name="contextLength">Row length.</param>
        /// <param name="truncate">See <see cref="ClipTokenizer.Tokenize"/>.</param>
        /// <returns>A new CPU tensor owned by the caller.</returns>
        public torch.Tensor ToTensor(IReadOnlyList<string> texts, int contextLength = ClipTokenizer.DefaultContextLength, bool truncate = false)
        {
            ArgumentNullException.ThrowIfNull(texts);
            var flat = new long[(long)texts.Count * contextLength];
            var row = new int[contextLength];
            for (int i = 0; i < texts.Count; i++)
            {
                tokenizer.FillRow(texts[i], row, contextLength, truncate);
                for (int j = 0; j < contextLength; j++) flat[(long)i * contextLength + j] = row[j];
            }
            return torch.tensor(flat, [texts.Count, contextLength], torch.int64);
        }
    }
}
